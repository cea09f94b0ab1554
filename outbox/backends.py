"""A Django EmailBackend that sends through the System Account, via the outbox.

With EMAIL_BACKEND = "outbox.backends.EmailBackend", django.core.mail.send_mail,
mail_admins and the password-reset mail become outbox rows, delivered by the workers like
any other mail of the CRM.
"""

import logging

from django.core.mail.backends.base import BaseEmailBackend
from django.utils.html import strip_tags

from smtp_accounts.models import AccountType
from smtp_accounts.senders.base import is_default_sender
from smtp_accounts.services import NoReadyAccount

from .services import send_email

logger = logging.getLogger(__name__)


class EmailBackend(BaseEmailBackend):
    """Queues each message through the System Account; returns how many were queued."""

    def send_messages(self, email_messages):
        """Queue `email_messages`. Returns the number queued.

        Raises NoReadyAccount when there is no ready System Account, ValueError for a
        message the outbox cannot carry (attachments, no recipient); with fail_silently,
        those messages are skipped and logged instead.
        """
        queued = 0
        for message in email_messages:
            try:
                send_email(account_type=AccountType.SYSTEM, **_outbox_fields(message))
            except (NoReadyAccount, ValueError) as err:
                if not self.fail_silently:
                    raise
                logger.warning("Django mail to %d recipient(s) not queued: %s",
                               len(message.recipients()), err)  # fmt: skip
            else:
                queued += 1
        return queued


def _outbox_fields(message):
    """send_email's arguments for a Django EmailMessage. Raises ValueError for attachments."""
    if message.attachments:
        raise ValueError("The outbox cannot carry attachments; send this email without them.")
    body, html_body = message.body, None
    if message.content_subtype == "html":
        body, html_body = strip_tags(message.body), message.body
    for content, mimetype in getattr(message, "alternatives", ()):
        if mimetype == "text/html":
            html_body = content
    return {
        "to": message.to, "cc": message.cc, "bcc": message.bcc, "reply_to": message.reply_to,
        "subject": message.subject, "body": body, "html_body": html_body,
        "from_email": None if is_default_sender(message.from_email) else message.from_email,
        "headers": message.extra_headers,
    }  # fmt: skip

