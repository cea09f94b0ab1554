"""The sender interface and its errors.

A sender delivers Django `EmailMessage`s through one account. Use it as a context manager to
keep one connection open across many messages:

    with get_sender(account) as sender:
        for message in messages:
            delivery = sender.send(message)
"""

import copy
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass
class Delivery:
    """What a send achieved: the provider's message id, the server's final reply, and a
    result per recipient: {"email", "outcome": "accepted"|"refused", "code", "reason"}."""

    provider_id: str = ""
    code: int | None = None
    reply: str = ""
    recipients: list = field(default_factory=list)

    @property
    def refused(self):
        return [entry for entry in self.recipients if entry["outcome"] == "refused"]


@dataclass
class BatchRecipient:
    """One recipient of a batch call: `to` (an address, maybe with a display name), the
    values of its `%recipient.NAME%` placeholders, and the headers that are its own
    (e.g. List-Unsubscribe)."""

    to: str
    values: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RawMessage:
    """A message in its wire form, as a sender's render() made it: the envelope, the bytes
    that follow DATA (CRLF line ends) and its Message-ID. send() sends it as it is."""

    envelope_from: str
    recipients: list
    data: bytes
    message_id: str


def recipient_results(accepted, refused=None):
    """Per-recipient results: `accepted` addresses, `refused` {address: (code, reply)}."""
    refused = refused or {}
    results = [{"email": address, "outcome": "accepted", "code": None, "reason": ""}
               for address in accepted if address not in refused]  # fmt: skip
    for address, (code, reply) in refused.items():
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        results.append({"email": address, "outcome": "refused", "code": code, "reason": text})
    return results


class SendError(Exception):
    """A message could not be sent. `reason` is a sentence an admin can act on; `code` the
    server's SMTP or HTTP status, and `recipients` per-recipient results, when known."""

    kind = ""

    def __init__(self, reason, *, code=None, recipients=()):
        super().__init__(reason)
        self.reason, self.code, self.recipients = reason, code, list(recipients)


class TemporaryFailure(SendError):
    """Worth retrying later: timeouts, SMTP 4xx, Mailgun 429/5xx, a dropped connection."""

    kind = "temporary"


class Throttled(TemporaryFailure):
    """The server asks the CRM to slow down (421, 450-452 at MAIL FROM, 432 4.3.2, a quota
    reply, Mailgun 429): the account is paused and the try does not count against the
    message. `retry_after`: seconds the server asked for, if it said. `before_data`: the
    server had accepted nothing of the message, so another account may send it."""

    def __init__(self, reason, *, code=None, recipients=(), retry_after=None, before_data=True):
        super().__init__(reason, code=code, recipients=recipients)
        self.retry_after, self.before_data = retry_after, before_data


class PermanentFailure(SendError):
    """This message will never go: SMTP 5xx for a recipient, Mailgun 4xx for the message."""

    kind = "permanent"


class ConfigurationError(ImproperlyConfigured):
    """The account itself is wrong (login refused, TLS failure, host not allowed …).

    Deliberately outside SendError, as in django-anymail: no retry may swallow it; it fails
    the message and is shown on the account.
    """

    kind = "configuration"

    def __init__(self, reason, *, code=None):
        super().__init__(reason)
        self.reason, self.code, self.recipients = reason, code, []


def is_default_sender(address):
    """True for no sender or Django's placeholders (DEFAULT_FROM_EMAIL, SERVER_EMAIL): such
    mail goes out from the account's own address, since a relay refuses mail that claims
    to be from an address it does not serve."""
    return not address or address in (settings.DEFAULT_FROM_EMAIL, settings.SERVER_EMAIL)


class Sender:
    """Base class: one account, an optional open connection, `send(message) -> provider id`.

    It owns the connection's life; a provider overrides the hooks `connect()`,
    `disconnect(backend)`, `deliver(message)` and, to check more, `prepare(message)`.
    send() without open() connects for that one message. A provider that can send one
    template to many recipients in one call sets `can_batch` and fills `deliver_batch`.
    """

    can_batch = False

    def __init__(self, account):
        self.account = account
        self.backend = None  # the open connection, if any
        self._keep_open = False

    def open(self):
        """Connect now and keep the connection until close().

        Raises SendError or ConfigurationError."""
        self._keep_open = True
        self._connect()

    def close(self):
        """Close the connection; never raises."""
        self._keep_open = False
        backend, self.backend = self.backend, None
        if backend is not None:
            self.disconnect(backend)

    @property
    def is_open(self):
        """True while a connection is open (a failure that broke it closes it)."""
        return self.backend is not None

    def send(self, message):
        """Deliver one EmailMessage, or a RawMessage this sender rendered, and return its
        Delivery (provider id, per recipient).

        The From header is the account's address unless the message sets its own. Raises
        TemporaryFailure, PermanentFailure or ConfigurationError.
        """
        if not isinstance(message, RawMessage):  # a RawMessage was prepared to be rendered
            message = self.prepare(message)
        self._connect()
        try:
            return self.deliver(message)
        finally:
            if not self._keep_open:
                self.close()

    def send_batch(self, message, recipients):
        """Deliver the EmailMessage `message` (its To is replaced) to each BatchRecipient in
        one call: every recipient sees only their own address, their own headers and their
        placeholders filled. Returns a Delivery per recipient, in order. Raises as send();
        NotImplementedError when the provider cannot (`can_batch` is False)."""
        if not self.can_batch:
            raise NotImplementedError(f"{type(self).__name__} sends one message at a time.")
        message = copy.copy(message)
        message.to, message.cc, message.bcc = [r.to for r in recipients], [], []
        message = self.prepare(message)
        self._connect()
        try:
            return self.deliver_batch(message, recipients)
        finally:
            if not self._keep_open:
                self.close()

    def _connect(self):
        if self.backend is None:
            self.backend = self.connect()

    # --- Hooks ---------------------------------------------------------------------------

    def prepare(self, message):
        """A copy of `message` ready to send (the caller's is not changed).

        Raises PermanentFailure for a message that can never go."""
        message = copy.copy(message)
        if is_default_sender(message.from_email):
            message.from_email = self.account.from_address
        if not message.recipients():
            raise PermanentFailure("The message has no recipients (To, Cc and Bcc are empty).")
        return message

    def render(self, message):
        """The RawMessage that send() would send for the EmailMessage `message`, or None when
        this sender hands providers fields, not bytes (Mailgun's API). Needs no connection.
        Raises PermanentFailure for a message that can never go."""
        return None

    def connect(self):
        """Return an open connection (a backend). Raises SendError or ConfigurationError."""
        raise NotImplementedError

    def disconnect(self, backend):
        """Close `backend`; never raises."""
        raise NotImplementedError

    def deliver(self, message):
        """Send a prepared message (or a RawMessage) on self.backend; return its Delivery."""
        raise NotImplementedError

    def deliver_batch(self, message, recipients):
        """Send a prepared template to `recipients` on self.backend (see send_batch)."""
        raise NotImplementedError

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
