"""Delivery events on the messages they are about: Mailgun's webhooks, and the bounces an
SMTP server returned to an account's bounce mailbox (bounces.py).

Every event is a history entry. A permanent failure fails the message, suppresses the
address and, for an external (Mailgun) account, tells the sender (notices.py); a complaint
suppresses the address. An event is matched by the provider's message id *and* its
recipient: a Mailgun batch shares one id across its rows, one recipient each. It can arrive
before its message is recorded as sent (sent rows are saved in groups): it then waits as a
PendingEvent and is applied when the row is recorded (deliver.py calls
apply_pending_events), never dropped. A repeated event changes nothing.
"""

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Attempt, OutboundMessage, PendingEvent, Suppression, normalize_address
from . import history, notices, suppressions

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
Outcome = Attempt.Outcome
Reason = Suppression.Reason

# Event types (anymail's names) -> (history outcome, whether it fails the message, the
# suppression it makes or None).
OUTCOMES = {
    "bounced": (Outcome.BOUNCED, True, Reason.BOUNCE),
    "rejected": (Outcome.BOUNCED, True, Reason.BOUNCE),
    "deferred": (Outcome.DEFERRED, False, None),
    "delivered": (Outcome.DELIVERED, False, None),
    "complained": (Outcome.COMPLAINED, False, Reason.COMPLAINT),
}
FAILURE = {
    "bounced": "{source} reported that the message to {recipient} bounced: {detail}",
    "rejected": "{source} refused to send the message to {recipient}: {detail}",
}
COMPLAINT = "{recipient} marked the message as spam; the CRM sends nothing more to the address."
ADVICE = " Check the address before sending to it again."


def record_event(provider_message_id, event_type, *, recipient="", detail=""):
    """Apply a Mailgun event to the sent messages with that provider id and recipient.
    Returns how many it reached; with none (not recorded as sent yet) it is kept as a
    PendingEvent."""
    if event_type not in OUTCOMES:
        return 0
    event = PendingEvent(provider_message_id=provider_message_id, event_type=event_type,
                         recipient=recipient, detail=detail)  # fmt: skip
    with transaction.atomic():
        reached = _apply_pending(event)
        if not reached:
            event.save()
    return reached


def apply_pending_events(provider_message_ids):
    """Apply, then forget, the pending events of these provider ids that now reach a row.
    Returns how many were looked at."""
    pending = list(PendingEvent.objects.filter(provider_message_id__in=set(provider_message_ids)))
    for event in pending:
        with transaction.atomic():
            if _apply_pending(event):
                event.delete()
    return len(pending)


def apply_event(messages, event_type, *, recipient="", detail="", source="Mailgun"):
    """Write an event about `recipient` into the history of `messages` (sent or failed rows
    with their account): a failure fails them, a bounce or complaint suppresses the address.
    `source` names who reported it. An event already in a message's history changes nothing
    there. Returns the history entries written."""
    outcome, fails, suppression = OUTCOMES[event_type]
    reason = _reason(event_type, recipient, detail, source)
    results = [{"email": recipient, "outcome": "refused" if fails else "accepted",
                "code": None, "reason": detail}] if recipient else []  # fmt: skip
    entries = []
    with transaction.atomic():  # the row, its history and the suppression change together
        for message in messages:
            if _already_recorded(message, outcome, reason):
                continue  # Mailgun re-sent the webhook, or the mailbox gave the bounce twice
            told = ""
            if fails and _fail(message, reason):  # once per message: sent -> failed
                told = notices.notify_sender(message, recipient, detail)
            entries.append(history.attempt(message, outcome, reason=reason + told,
                                           recipients=results))  # fmt: skip
        history.record_attempts(entries)
        if entries and suppression and recipient:
            _suppress(recipient, suppression, detail, entries[0].message)
    return entries


def _suppress(recipient, reason, detail, message):
    try:
        suppressions.suppress(recipient, reason, note=detail, message=message)
    except ValueError:  # a bounce may name an address we never sent to (a forward)
        logger.warning("Not suppressed, not an email address: %r", recipient[:100])


def _apply_pending(event):
    """Apply a (pending or new) Mailgun event to its messages. Returns how many matched."""
    messages = _matching(event.provider_message_id, event.recipient)
    apply_event(messages, event.event_type, recipient=event.recipient, detail=event.detail)
    return len(messages)


def _matching(provider_message_id, recipient):
    """The sent or failed messages with this provider id that were for `recipient` (all of
    them when the event names no recipient)."""
    messages = OutboundMessage.objects.select_related("account").filter(
        provider_message_id=provider_message_id, status__in=[Status.SENT, Status.FAILED]
    )
    if not recipient:
        return list(messages)
    return [message for message in mentioning(messages, recipient) if is_for(message, recipient)]


def mentioning(messages, recipient):
    """`messages` narrowed by the database to those whose recipients' text contains
    `recipient` (any case): a superset; is_for makes the exact check."""
    return messages.filter(
        Q(to__icontains=recipient) | Q(cc__icontains=recipient) | Q(bcc__icontains=recipient)
    )


def is_for(message, recipient):
    """True when `recipient` (any case) is among the message's To, Cc and Bcc."""
    wanted = normalize_address(recipient)
    return any(normalize_address(suppressions.address_of(address)) == wanted
               for address in (*message.to, *message.cc, *message.bcc))  # fmt: skip


def _reason(event_type, recipient, detail, source):
    if event_type in FAILURE:
        return FAILURE[event_type].format(source=source, recipient=recipient or "its recipient",
                                          detail=detail)  # fmt: skip
    if event_type == "complained" and recipient:
        return COMPLAINT.format(recipient=recipient)
    return detail


def _already_recorded(message, outcome, reason):
    # Same outcome, same words: Mailgun re-sent a webhook it got no 200 for, or a bounce was
    # read twice. (Two deferrals with the very same reply collapse into one entry; the
    # history loses nothing an admin acts on.) The notice's sentence may follow the event's
    # own reason: compare the start.
    return Attempt.objects.filter(message=message, outcome=outcome,
                                  reason__startswith=reason).exists()  # fmt: skip


def _fail(message, reason):
    """Fail a sent message for this event. Returns True when it changed (sent -> failed), so
    the sender is told once per message."""
    changed = OutboundMessage.objects.filter(pk=message.pk, status=Status.SENT).update(
        status=Status.FAILED, error_kind=OutboundMessage.ErrorKind.PERMANENT,
        last_error=reason + ADVICE, updated_at=timezone.now(),
    )  # fmt: skip
    if changed:
        message.status = Status.FAILED
        logger.warning("Outbox message %s failed after it was sent: %s", message.pk, reason)
    return bool(changed)
