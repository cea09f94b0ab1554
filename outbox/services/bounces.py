"""Bounces an SMTP server returned to an internal account's bounce mailbox, applied to the
messages they are about (DESIGN.md, Bounces and suppressions).

smtp_accounts/bounces.py reads the mailbox (IMAP over TLS, netguard) and dsn.py parses each
report; this module finds our message — by the original Message-ID (ours are stable per
message: enqueue.message_as_email, kept as the provider message id when sent), else the most
recent mail of the account to that recipient — and applies each failure like Mailgun's
events (events.apply_event): a permanent one fails the message and suppresses the address,
a delay is a history entry. A processed bounce is flagged \\Seen, never deleted; one that
matches nothing of ours is flagged too (it would otherwise be read on every poll).
"""

from dataclasses import dataclass

from smtp_accounts.bounces import BounceMailboxError, open_bounce_mailbox
from smtp_accounts.models import Provider, SmtpAccount

from ..models import OutboundMessage
from . import events

Status = OutboundMessage.Status
SOURCE = "The receiving mail server"


@dataclass(frozen=True)
class Applied:
    """One failure of a bounce and what it did: `message` (None when it matched none of
    ours), `email`, `permanent`, `reason`."""

    message: OutboundMessage | None
    email: str
    permanent: bool
    reason: str


def accounts_with_mailbox():
    """The accounts whose bounce mailbox beat reads (inactive ones too: their sent mail
    still bounces)."""
    return SmtpAccount.objects.filter(provider=Provider.INTERNAL).exclude(bounce_host="")


def fetch_bounces(account):
    """Read the unseen bounces of `account`'s mailbox, apply each and flag it \\Seen.
    Returns the Applied failures. Raises BounceMailboxError (its reason is also kept on the
    account, as the last read's error) when the mailbox cannot be read."""
    applied = []
    try:
        with open_bounce_mailbox(account) as mailbox:
            for bounce in mailbox.unseen_bounces():
                applied += apply_report(account, bounce.report)
                mailbox.mark_seen(bounce.uid)  # after applying: a crash reads it again
    except BounceMailboxError as err:
        account.record_bounce_check(err.reason)  # the caller says it (a command's one line)
        raise
    account.record_bounce_check("")
    return applied


def apply_report(account, report):
    """Apply a dsn.BounceReport received by `account`'s mailbox. Returns an Applied per
    failure it reports."""
    applied = []
    for failure in report.failures:
        message = find_message(account, report.original_message_id, failure.email)
        if message is not None:
            events.apply_event([message], "bounced" if failure.permanent else "deferred",
                               recipient=failure.email, detail=failure.reason,
                               source=SOURCE)  # fmt: skip
        applied.append(Applied(message, failure.email, failure.permanent, failure.reason))
    return applied


def find_message(account, message_id, recipient):
    """The sent message a bounce is about: the one whose Message-ID the bounce returned,
    else the most recent one of `account` to `recipient`. Returns it, or None."""
    handed = OutboundMessage.objects.select_related("account").filter(
        status__in=[Status.SENT, Status.FAILED], sent_at__isnull=False
    )
    if message_id and (found := handed.filter(provider_message_id=message_id).first()):
        return found
    if not recipient:
        return None
    mine = handed.filter(account=account)
    recent = events.mentioning(mine, recipient).order_by("-sent_at", "-pk")
    return next((m for m in recent[:50] if events.is_for(m, recipient)), None)
