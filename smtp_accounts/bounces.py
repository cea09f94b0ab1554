"""An internal account's bounce mailbox: where its SMTP server returns undelivered mail.

`open_bounce_mailbox(account)` logs in over IMAP with implicit TLS (port 993), connecting
only where netguard allows and verifying the certificate against the system CAs plus
SMTP_ACCOUNTS_CA_FILE, like SMTP. `unseen_bounces()` reads the unseen mail without marking
it (BODY.PEEK) and yields each bounce, parsed by dsn.parse_bounce; the caller applies it and
then calls `mark_seen(uid)`, so a bounce whose handling failed is read again next time. Mail
that is not a bounce (a person's reply, an auto-reply) is left unseen for the people who
share the mailbox. Nothing is ever deleted.

imaplib rather than IMAPClient: four commands (LOGIN, SELECT, UID SEARCH/FETCH/STORE) need
no extra dependency, and `IMAP4.open()` is imaplib's documented place to supply our own
socket, the one netguard checked. Every failure is a BounceMailboxError whose reason names
the mailbox and the fix; it never contains the password.
"""

import imaplib
import logging
import ssl
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from . import crypto, netguard
from .dsn import parse_bounce
from .senders.base import ConfigurationError
from .senders.smtp import tls_context

__all__ = [
    "BounceMailbox", "BounceMailboxError", "UnseenBounce", "check_bounce_mailbox",
    "open_bounce_mailbox",
]

logger = logging.getLogger(__name__)

# At most this many unseen messages are read per run; the rest wait for the next poll, so
# one huge backlog cannot hold a worker for long.
MAX_PER_RUN = 200
MAILBOX = "INBOX"


class BounceMailboxError(Exception):
    """The bounce mailbox could not be read. `reason` says why and what to fix."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UnseenBounce:
    """An unseen bounce: its IMAP `uid` (for mark_seen) and its dsn.BounceReport."""

    uid: bytes
    report: object


class GuardedIMAP4_TLS(imaplib.IMAP4):
    """IMAP over implicit TLS whose socket netguard connected to an allowed address.

    The host name is kept for SNI and the certificate check, as for SMTP.
    """

    def __init__(self, host, port, *, ssl_context, timeout):
        self.ssl_context = ssl_context
        super().__init__(host, port, timeout)

    def open(self, host="", port=imaplib.IMAP4_SSL_PORT, timeout=None):
        # imaplib documents open() as the method to override; read(), readline(), send()
        # and shutdown() then use self.sock and self.file.
        self.host, self.port = host, port
        raw = netguard.create_connection(host, port, timeout)
        try:
            self.sock = self.ssl_context.wrap_socket(raw, server_hostname=host)
        except OSError:
            raw.close()
            raise
        self.file = self.sock.makefile("rb")


class BounceMailbox:
    """A logged-in IMAP session on the account's bounce mailbox, INBOX selected."""

    def __init__(self, account, client):
        self.account = account
        self.client = client

    def unseen_uids(self, limit=MAX_PER_RUN):
        """UIDs of the unseen messages, oldest first, at most `limit` of them."""
        data = self._call(self.client.uid, "SEARCH", None, "UNSEEN")
        return (data[0] or b"").split()[:limit]

    def unseen_bounces(self):
        """Yield an UnseenBounce for each unseen message that is a bounce. Raises
        BounceMailboxError when the server fails midway."""
        for uid in self.unseen_uids():
            raw = self._fetch(uid)
            report = parse_bounce(raw) if raw is not None else None
            if report is not None:
                yield UnseenBounce(uid, report)

    def mark_seen(self, uid):
        """Flag one message \\Seen (it is never deleted)."""
        self._call(self.client.uid, "STORE", uid, "+FLAGS.SILENT", r"(\Seen)")

    def _fetch(self, uid):
        """The raw bytes of message `uid`, read without setting \\Seen (None if gone)."""
        data = self._call(self.client.uid, "FETCH", uid, "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return item[1]
        return None  # expunged by someone else meanwhile

    def _call(self, command, *args):
        try:
            status, data = command(*args)
        except (imaplib.IMAP4.error, OSError) as err:
            raise BounceMailboxError(_describe(err, self.account)) from err
        if status != "OK":
            raise BounceMailboxError(
                f"{_where(self.account)} answered {status}: {_said(data)}."
            )
        return data


@contextmanager
def open_bounce_mailbox(account):
    """Log in to `account`'s bounce mailbox and yield a BounceMailbox; log out afterwards.

    Raises BounceMailboxError when it has none, cannot be reached, refuses TLS or the login.
    """
    client = _connect(account)
    try:
        _login(client, account)
        mailbox = BounceMailbox(account, client)
        mailbox._call(client.select, MAILBOX)
        yield mailbox
    finally:
        _logout(client)


def check_bounce_mailbox(account):
    """Log in to the bounce mailbox and change nothing. Returns what was seen, in a line;
    raises BounceMailboxError."""
    with open_bounce_mailbox(account) as mailbox:
        unseen = len(mailbox.unseen_uids(limit=None))
        tls = mailbox.client.sock.version()
    return (f"logged in to {account.bounce_host}:{account.bounce_port} as "
            f"{account.bounce_username} ({tls}); {unseen} unseen message"
            f"{'' if unseen == 1 else 's'} in {MAILBOX}")


def _connect(account):
    if not account.has_bounce_mailbox:
        raise BounceMailboxError(f"The account {account.name!r} has no bounce mailbox.")
    try:
        return GuardedIMAP4_TLS(
            account.bounce_host, account.bounce_port, ssl_context=tls_context(),
            timeout=settings.SMTP_ACCOUNTS_TIMEOUT,
        )
    except ConfigurationError as err:  # SMTP_ACCOUNTS_CA_FILE cannot be loaded
        raise BounceMailboxError(err.reason) from err
    except ImproperlyConfigured as err:  # a malformed SMTP_ACCOUNTS_ALLOWED_NETWORKS
        raise BounceMailboxError(str(err)) from err
    except (imaplib.IMAP4.error, OSError, netguard.HostNotAllowed,
            netguard.HostUnresolvable) as err:
        raise BounceMailboxError(_describe(err, account)) from err


@sensitive_variables("password")
def _login(client, account):
    try:
        password = account.get_bounce_password()
    except crypto.UndecryptableSecret as err:
        raise BounceMailboxError(
            "The stored IMAP password cannot be decrypted with the keys in FERNET_KEYS; "
            "type the IMAP password again."
        ) from err
    try:
        client.login(account.bounce_username, password)
    except imaplib.IMAP4.abort as err:
        raise BounceMailboxError(_describe(err, account)) from err
    except imaplib.IMAP4.error as err:
        said = str(err).replace(password, "********") if password else str(err)
        raise BounceMailboxError(
            f"{_where(account)} refused the login for {account.bounce_username} ({said}): "
            "check the IMAP user and password."
        ) from err
    except OSError as err:
        raise BounceMailboxError(_describe(err, account)) from err


def _logout(client):
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        pass  # the session is over either way


def _where(account):
    return f"The bounce mailbox {account.bounce_host}:{account.bounce_port}"


def _at(account):
    return f"the bounce mailbox {account.bounce_host}:{account.bounce_port}"


def _said(data):
    return " ".join(
        item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        for item in data or () if item
    ) or "no reason given"


def _describe(err, account):
    """A sentence for an exception raised while talking to the bounce mailbox."""
    where = _where(account)
    if isinstance(err, netguard.HostNotAllowed | netguard.HostUnresolvable):
        return err.reason
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"The certificate of {account.bounce_host} is not trusted "
                f"({err.verify_message or err.reason}). If it is your company's own CA, set "
                "SMTP_ACCOUNTS_CA_FILE.")
    if isinstance(err, ssl.SSLError):
        return (f"The TLS handshake with {_at(account)} failed ({err.reason or err}); the bounce "
                "mailbox needs IMAP over TLS (usually port 993).")
    if isinstance(err, TimeoutError):
        return f"{where} did not answer within {float(settings.SMTP_ACCOUNTS_TIMEOUT):g} s."
    if isinstance(err, ConnectionRefusedError):
        return f"{where} refused the connection; check the IMAP host and port."
    if isinstance(err, imaplib.IMAP4.abort):
        return f"{where} closed the connection ({err}); is it an IMAP server?"
    if isinstance(err, imaplib.IMAP4.error):
        return f"{where} answered with an error ({err})."
    return f"Could not reach {_at(account)} ({err.strerror or err})."
