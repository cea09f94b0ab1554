"""Kept connections: one open Sender per account and worker process, closed when idle.

Opening an SMTP connection (TCP, TLS, login) costs more than sending a message over it, so a
worker keeps each account's connection between tasks, for IDLE_SECONDS at most.
"""

import threading
import time

from smtp_accounts.crypto import UndecryptableSecret
from smtp_accounts.senders import ConfigurationError, SendError, TemporaryFailure, get_sender

from ..policy import IDLE_SECONDS


class CannotOpen(Exception):
    """The connection could not be opened: the remaining messages cannot go either."""

    def __init__(self, error):
        super().__init__(error.reason)
        self.error = error


def close_connections():
    """Close every connection this process keeps open (at worker shutdown)."""
    _idle.close_idle(idle_for=0)


class KeptConnection:
    """The account's Sender for one task, opened on first use.

    With keep=True it comes from, and goes back to, this process's idle connections: a
    worker sends message after message without reconnecting. A kept connection that broke
    on its first use is replaced by a fresh one, once (the server may have hung up on it
    while idle); a failure that leaves it open (a 451 for one recipient) is the message's.
    """

    def __init__(self, account, *, keep):
        self.account, self.keep = account, keep
        self.sender, self.untried = None, False  # untried: kept, not used since it idled

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.sender is not None and self.keep:
            _idle.put(self.account, self.sender)
        elif self.sender is not None:
            self.sender.close()
        return False

    def send(self, email):
        """Send `email` (an EmailMessage, or a RawMessage the account's sender rendered);
        returns its Delivery. Raises CannotOpen, SendError or ConfigurationError."""
        return self._call(lambda sender: sender.send(email))

    def send_batch(self, email, recipients):
        """Send `email` to each BatchRecipient in one call (Sender.send_batch); returns a
        Delivery per recipient. Raises as send()."""
        return self._call(lambda sender: sender.send_batch(email, recipients))

    def _call(self, send):
        if self.sender is None:
            self._open(reuse=True)
        try:
            delivery = send(self.sender)
        except TemporaryFailure:
            reopen, self.untried = self.untried and not self.sender.is_open, False
            if not reopen:
                raise  # the message's own failure; a broken connection reopens by itself
            # The server hung up on the kept connection while it idled: once, try again on
            # a fresh one.
            self.discard()
            self._open(reuse=False)
            delivery = send(self.sender)
        self.untried = False
        return delivery

    def discard(self):
        if self.sender is not None:
            self.sender.close()
        self.sender, self.untried = None, False

    def _open(self, *, reuse):
        self.sender = _idle.take(self.account) if self.keep and reuse else None
        self.untried = self.sender is not None
        if self.sender is None:
            sender = get_sender(self.account)
            try:
                sender.open()
            except (SendError, ConfigurationError) as err:
                raise CannotOpen(err) from err
            except UndecryptableSecret as err:
                raise CannotOpen(ConfigurationError(str(err))) from err
            self.sender = sender


class _IdleSenders:
    """Open senders kept between tasks: one per account, closed when unused for IDLE_SECONDS
    (a timer thread checks) or when the account's settings changed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._senders = {}  # account pk -> (settings key, sender, monotonic time it came back)
        self._timer = None

    def take(self, account):
        with self._lock:
            key, sender, _ = self._senders.pop(account.pk, (None, None, None))
        if sender is not None and key != _settings_key(account):
            sender.close()
            return None
        return sender

    def put(self, account, sender):
        with self._lock:
            previous = self._senders.pop(account.pk, None)
            self._senders[account.pk] = (_settings_key(account), sender, time.monotonic())
            self._schedule()
        if previous is not None:
            previous[1].close()

    def close_idle(self, idle_for=IDLE_SECONDS):
        with self._lock:
            self._timer = None
            cutoff = time.monotonic() - idle_for
            idle = [pk for pk, (_, _, since) in self._senders.items() if since <= cutoff]
            closing = [self._senders.pop(pk)[1] for pk in idle]
            self._schedule()
        for sender in closing:
            sender.close()

    def _schedule(self):
        if self._senders and self._timer is None:
            self._timer = threading.Timer(IDLE_SECONDS / 2, self.close_idle)
            self._timer.daemon = True
            self._timer.start()


_idle = _IdleSenders()


def _settings_key(account):
    fields = ("provider", "host", "port", "username", "security", "domain", "updated_at")
    return tuple(getattr(account, name) for name in fields)
