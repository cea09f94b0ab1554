"""Sends through the account's SMTP server (placeholder; being written)."""

from .base import Sender


class SmtpSender(Sender):
    pass
