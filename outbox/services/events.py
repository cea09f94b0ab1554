"""Provider events (Mailgun's webhooks) on the messages they are about.

A bounce or refusal fails a sent message; every event is a history entry. An event can
arrive before its message is recorded as sent (sent rows are saved in groups): it then waits
as a PendingEvent and is applied when the row is recorded (deliver.py calls
apply_pending_events), never dropped.
"""

import logging

from django.db import transaction
from django.utils import timezone

from ..models import Attempt, OutboundMessage, PendingEvent
from . import history

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
Outcome = Attempt.Outcome

# Event types (anymail's names) -> (history outcome, whether it fails the message).
OUTCOMES = {
    "bounced": (Outcome.BOUNCED, True),
    "rejected": (Outcome.BOUNCED, True),
    "deferred": (Outcome.DEFERRED, False),
    "delivered": (Outcome.DELIVERED, False),
    "complained": (Outcome.COMPLAINED, False),
}
FAILURE = {
    "bounced": "Mailgun reported that the message to {recipient} bounced: {detail}",
    "rejected": "Mailgun refused to send the message to {recipient}: {detail}",
}
ADVICE = " Check the address before sending to it again."


def record_event(provider_message_id, event_type, *, recipient="", detail=""):
    """Apply a provider event to the sent messages with that provider id. Returns how many
    it reached; with none (not recorded as sent yet) it is kept as a PendingEvent."""
    if event_type not in OUTCOMES:
        return 0
    event = PendingEvent(provider_message_id=provider_message_id, event_type=event_type,
                         recipient=recipient, detail=detail)  # fmt: skip
    with transaction.atomic():
        reached = _apply(event)
        if not reached:
            event.save()
    return reached


def apply_pending_events(provider_message_ids):
    """Apply, then forget, the pending events of these provider ids. Returns how many."""
    pending = list(PendingEvent.objects.filter(provider_message_id__in=set(provider_message_ids)))
    for event in pending:
        with transaction.atomic():
            if _apply(event):
                event.delete()
    return len(pending)


def _apply(event):
    """Write the event into the history of its sent messages (failing them for a bounce)."""
    outcome, fails = OUTCOMES[event.event_type]
    messages = list(
        OutboundMessage.objects.select_related("account").filter(
            provider_message_id=event.provider_message_id, status__in=[Status.SENT, Status.FAILED]
        )
    )
    recipient = event.recipient or "its recipient"
    reason = FAILURE[event.event_type].format(recipient=recipient, detail=event.detail) if fails \
        else event.detail  # fmt: skip
    results = [{"email": event.recipient, "outcome": "refused" if fails else "accepted",
                "code": None, "reason": event.detail}] if event.recipient else []  # fmt: skip
    history.record_attempts([history.attempt(message, outcome, reason=reason, recipients=results)
                             for message in messages])  # fmt: skip
    if fails:
        failed = OutboundMessage.objects.filter(pk__in=[m.pk for m in messages], status=Status.SENT)
        failed.update(status=Status.FAILED, error_kind=OutboundMessage.ErrorKind.PERMANENT,
                      last_error=reason + ADVICE, updated_at=timezone.now())  # fmt: skip
        logger.warning("Mailgun %s message %s: %d outbox message(s) marked failed",
                       event.event_type, event.provider_message_id, len(messages))  # fmt: skip
    return len(messages)
