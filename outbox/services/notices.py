"""The notice back to the sender (DESIGN.md, Bounces and suppressions): the help page promises
that mail which cannot be delivered goes back to its sender.

An SMTP server returns its bounces to the account's own mailbox, so only mail of an external
(Mailgun) account needs the CRM to do it: after a permanent failure, one notice, Subject
`Undelivered: <original subject>`, through the System account, to the message's Reply-To,
else the account's Email. A notice is marked (NOTICE_HEADER), and a notice that bounces
never makes another; its idempotency key makes it once per bounced message.
"""

import logging

from django.utils import timezone

from smtp_accounts.models import AccountType
from smtp_accounts.services.accounts import NoReadyAccount

from .enqueue import send_email

logger = logging.getLogger(__name__)
NOTICE_HEADER = "X-CRM-Notice"
SUBJECT_LENGTH = 998  # RFC 5322's line limit, as enqueue checks
BODY = """\
Your message could not be delivered to {recipient}.

Subject: {subject}
Sent: {sent}
Reason: {reason}

The CRM sends nothing more to {recipient}: the address is on the suppression list. If it
was a mistake (the mailbox is fixed), an admin can remove it under System Settings ›
Suppressions.

This is an automatic notice; replies to it are not read.
"""


def notify_sender(message, recipient, reason):
    """Queue the Undelivered notice about `message` (its mail to `recipient` failed for good
    because of `reason`). Returns a sentence for the bounced message's history ("" when no
    notice is due: an internal account's server returns its own bounces, and a notice never
    gets one). Never raises for a missing System account: the sentence says so."""
    account = message.account
    if account is None or not account.is_external or is_notice(message):
        return ""
    to, subject = list(message.reply_to) or [account.email], message.subject_as_sent
    try:
        notice = send_email(
            account_type=AccountType.SYSTEM, to=to,
            subject=f"Undelivered: {subject}"[:SUBJECT_LENGTH],
            body=BODY.format(recipient=recipient or "its recipient", subject=subject,
                             sent=_when(message.sent_at), reason=reason),
            headers={NOTICE_HEADER: "undelivered", "Auto-Submitted": "auto-replied"},
            idempotency_key=f"undelivered-notice-{message.pk}",
        )  # fmt: skip
    except NoReadyAccount:
        logger.warning("No notice for bounced message %s: no System account is ready", message.pk)
        return (" No notice went to the sender: no System Account is active and verified "
                "(System Settings › SMTP Accounts).")  # fmt: skip
    return f" The sender was told: notice {notice.pk} to {', '.join(to)}."


def is_notice(message):
    """True when `message` is itself an Undelivered notice."""
    return any(name.lower() == NOTICE_HEADER.lower() for name in message.headers)


def _when(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"
