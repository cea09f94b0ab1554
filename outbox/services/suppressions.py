"""The suppression list: addresses the CRM no longer sends to (DESIGN.md, Bounces and
suppressions). A permanent bounce or a complaint adds one (events.py), an admin adds or
removes one (the Suppressions page, `mail_log suppressions`), and a send consults the list
once per claimed batch (`screen`): a suppressed recipient is dropped with a history entry
naming the suppression, and a message left with no recipient fails at once. Addresses are
compared ignoring case (stored lower case, see models.normalize_address).
"""

import logging
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Attempt, OutboundMessage, Suppression, normalize_address
from . import claim, history

logger = logging.getLogger(__name__)
Reason = Suppression.Reason


class SuppressionNotFound(LookupError):
    """No suppression has that address or id."""


def suppress(email, reason, *, note="", message=None):
    """Put `email` on the list. Returns (Suppression, created); an address already there
    keeps its first entry (reason, note, since). Raises ValueError for a malformed address."""
    address = checked_address(email)
    existing = Suppression.objects.filter(email=address).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():  # a savepoint: a concurrent insert keeps the caller's
            suppression = Suppression.objects.create(
                email=address, reason=reason, note=note[:2000], message=message
            )
    except IntegrityError:  # another bounce of the same address won the race
        return Suppression.objects.get(email=address), False
    logger.debug("Suppressed %s (%s)", address, reason)
    return suppression, True


def unsuppress(email):
    """Take `email` off the list: mail goes to it again. Returns the removed Suppression;
    raises SuppressionNotFound when it is not listed."""
    address = normalize_address(email)
    suppression = Suppression.objects.filter(email=address).first()
    if suppression is None:
        raise SuppressionNotFound(f"{address[:254]!r} is not on the suppression list.")
    suppression.delete()
    logger.debug("Removed %s from the suppression list", address)
    return suppression


def suppressed_among(addresses):
    """The suppressions of `addresses` (any case), in one query. Returns a dict keyed by
    the lower-case address; `address.lower() in result` tells whether one is suppressed."""
    wanted = {normalize_address(address_of(a)) for a in addresses if a}
    if not wanted:
        return {}
    return {s.email: s for s in Suppression.objects.filter(email__in=wanted)}


def filter_suppressions(q=None):
    """The list newest first, with the message that caused each; `q` narrows it to
    addresses or notes containing the text (any case)."""
    suppressions = Suppression.objects.select_related("message").order_by("-created_at", "-pk")
    if q:
        suppressions = suppressions.filter(Q(email__icontains=q) | Q(note__icontains=q))
    return suppressions


def address_of(value):
    """The bare address of `value` ("Ann <ann@example.com>" -> "ann@example.com")."""
    return parseaddr(value)[1] or value


def checked_address(email):
    """`email` lower case, or ValueError naming what is wrong (never a traceback)."""
    address = normalize_address(email)
    try:
        validate_email(address)
    except ValidationError:
        raise ValueError(f"{str(email)[:254]!r} is not a valid email address.") from None
    return address


def suppression_as_dict(suppression):
    """The contract's suppression object (`mail_log suppressions list --json`)."""
    return {
        "email": suppression.email,
        "reason": suppression.reason,
        "note": suppression.note,
        "created_at": suppression.created_at.isoformat(),
        "message": suppression.message_id,
    }


def describe(suppression):
    """The suppression in a sentence for a history entry or a command."""
    return f"{suppression.email} is on the suppression list {_since(suppression)}"


def _since(suppression):
    """ "since 2026-12-02 09:14 (it bounced)" """
    since = timezone.localtime(suppression.created_at).strftime("%Y-%m-%d %H:%M")
    why = {Reason.BOUNCE: "it bounced", Reason.COMPLAINT: "its owner complained (spam)",
           Reason.MANUAL: "an admin added it"}[suppression.reason]  # fmt: skip
    return f"since {since} ({why})"


def screen(messages):
    """Drop suppressed recipients from claimed `messages` before anything is sent.

    One query for the whole batch. A message with a suppressed recipient gets a
    `suppressed` history entry naming it, and goes to the others only (its row keeps every
    address: the Mail Log shows whom it was for); a message left with no recipient fails at
    once with that reason. Returns the messages that still go.
    """
    listed = suppressed_among(a for m in messages for a in (*m.to, *m.cc, *m.bcc))
    if not listed:
        return messages
    going, entries = [], []
    for message in messages:
        dropped = _drop(message, listed)
        if not dropped:
            going.append(message)
            continue
        reason = "Not sent to a suppressed address: " + "; ".join(map(describe, dropped)) + "."
        results = [{"email": s.email, "outcome": "suppressed", "code": None,
                    "reason": _since(s)} for s in dropped]  # fmt: skip
        entries.append(history.attempt(message, Attempt.Outcome.SUPPRESSED, reason=reason,
                                       recipients=results))  # fmt: skip
        if message.to or message.cc or message.bcc:
            going.append(message)
        else:
            _fail(message, reason)
    history.record_attempts(entries)
    return going


def _drop(message, listed):
    """Remove the listed addresses from the message's recipients (in memory only).
    Returns the suppressions that applied."""
    dropped = {}
    for field in ("to", "cc", "bcc"):
        kept = []
        for address in getattr(message, field):
            key = normalize_address(address_of(address))
            if key in listed:
                dropped[key] = listed[key]
            else:
                kept.append(address)
        setattr(message, field, kept)
    return list(dropped.values())


def _fail(message, reason):
    advice = " Remove the address from System Settings › Suppressions to send to it again."
    claim.finish(message, status=OutboundMessage.Status.FAILED, last_error=reason + advice,
                 error_kind=OutboundMessage.ErrorKind.PERMANENT)  # fmt: skip
    logger.info("Outbox message %s failed: every recipient is suppressed", message.pk)
