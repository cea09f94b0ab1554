"""Senders by provider: `get_sender(account)` returns the one that delivers for it."""

from .base import (
    BatchRecipient,
    ConfigurationError,
    Delivery,
    PermanentFailure,
    RawMessage,
    Sender,
    SendError,
    TemporaryFailure,
    Throttled,
)
from .mailgun import MailgunSender
from .smtp import SmtpSender

SENDERS = {
    "internal": SmtpSender,
    "external": MailgunSender,
}


def get_sender(account):
    """A new, unopened Sender for `account`."""
    return SENDERS[account.provider](account)


__all__ = [
    "BatchRecipient",
    "ConfigurationError",
    "Delivery",
    "SENDERS",
    "PermanentFailure",
    "RawMessage",
    "SendError",
    "Sender",
    "TemporaryFailure",
    "Throttled",
    "get_sender",
]
