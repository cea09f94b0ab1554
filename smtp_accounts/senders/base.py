"""The sender interface and its errors.

A sender delivers Django `EmailMessage`s through one account. Use it as a context manager to
keep one connection open across many messages:

    with get_sender(account) as sender:
        for message in messages:
            provider_id = sender.send(message)
"""

from django.core.exceptions import ImproperlyConfigured


class SendError(Exception):
    """A message could not be sent. `reason` is a sentence an admin can act on."""

    kind = ""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class TemporaryFailure(SendError):
    """Worth retrying later: timeouts, SMTP 4xx, Mailgun 429/5xx, a dropped connection."""

    kind = "temporary"


class PermanentFailure(SendError):
    """This message will never go: SMTP 5xx for a recipient, Mailgun 4xx for the message."""

    kind = "permanent"


class ConfigurationError(ImproperlyConfigured):
    """The account itself is wrong (login refused, TLS failure, host not allowed …).

    Deliberately outside SendError, as in django-anymail: no retry may swallow it; it fails
    the message and is shown on the account.
    """

    kind = "configuration"

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Sender:
    """Base class: one account, an optional open connection, `send(message) -> provider id`."""

    def __init__(self, account):
        self.account = account

    def open(self):
        """Open the connection (no-op by default). Raises SendError or ConfigurationError."""

    def close(self):
        """Close the connection; never raises."""

    def send(self, message):
        """Deliver one EmailMessage and return the provider's message id (may be "")."""
        raise NotImplementedError

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
