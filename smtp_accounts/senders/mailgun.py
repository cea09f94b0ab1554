"""Sends through Mailgun's HTTP API (placeholder; being written)."""

from .base import Sender


class MailgunSender(Sender):
    pass
