"""Sends through the account's own SMTP server, over Django's SMTP backend.

Django's backend does the protocol (STARTTLS or implicit TLS, login, sendmail); this module
adds what an admin-typed server needs: connect only where netguard allows, trust the system
CAs plus SMTP_ACCOUNTS_CA_FILE, never log in over plain text, and turn every failure into a
TemporaryFailure, PermanentFailure or ConfigurationError whose reason says what to do (the
wording lives in smtp_errors.py, shared with the connection diagnostics).
"""

import logging
import os
import re
import smtplib
import socket
import ssl
from email.utils import make_msgid
from functools import lru_cache, partial

from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address
from django.utils.functional import cached_property
from django.views.decorators.debug import sensitive_variables

from .. import crypto, netguard, oauth
from ..models import Security
from . import xoauth2
from .base import (
    ConfigurationError,
    Delivery,
    PermanentFailure,
    RawMessage,
    Sender,
    Throttled,
    recipient_results,
)
from .deadline import DeadlineExceeded, SocketGuard
from .smtp_errors import NETWORK_ERRORS, describe_error, throttling

logger = logging.getLogger(__name__)


def tls_context():
    """An SSLContext verifying certificates and host names against the system CAs plus
    settings.SMTP_ACCOUNTS_CA_FILE. Raises ConfigurationError if that file cannot be loaded.
    """
    cafile = settings.SMTP_ACCOUNTS_CA_FILE or None
    try:
        modified = os.stat(cafile).st_mtime_ns if cafile else None
        return _tls_context(cafile, modified)
    except (OSError, ValueError) as err:
        raise ConfigurationError(
            f"SMTP_ACCOUNTS_CA_FILE ({cafile}) cannot be loaded ({err}); "
            "point it at a readable PEM file of CA certificates."
        ) from err


@lru_cache(maxsize=4)
def _tls_context(cafile, modified):
    # Loading the system CAs takes tens of milliseconds, so connections share a context;
    # `modified` (the CA file's mtime) makes an edited file load again.
    context = ssl.create_default_context(cafile=cafile)
    if cafile:
        # With a cafile, create_default_context() skips the system CAs: load them as well.
        context.load_default_certs()
    return context


class GuardedSMTP(smtplib.SMTP):
    """smtplib.SMTP that connects only to addresses netguard allows, within a deadline.

    The socket goes to the checked IP while smtplib keeps the host name, so STARTTLS still
    sends it as SNI and verifies the certificate against it. `guard` (a SocketGuard, armed
    from the connect on) cuts off a server that answers too slowly in all; `last_reply` is
    the server's answer to the end of DATA, which smtplib's sendmail() does not return.
    """

    def __init__(self, *args, guard, **kwargs):
        self.guard, self.last_reply = guard, (None, b"")
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = netguard.create_connection(host, port, timeout)
        # SMTP is a chain of small writes; Nagle would hold each one back for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.guard.watch(sock)
        self.guard.arm()  # the greeting, EHLO, TLS and login: AccountBackend.open() ends it
        return sock

    def data(self, msg):
        self.last_reply = super().data(msg)
        return self.last_reply

    # smtplib quotes each envelope address by parsing it again (email.utils.parseaddr, tens
    # of µs a message); a plain address, the common case, is quoted as it is.
    def mail(self, sender, options=()):
        if not _PLAIN_ADDRESS.fullmatch(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)
        self.putcmd("mail", f"from:<{sender}>{_options(self, options)}")
        return self.getreply()

    def rcpt(self, recip, options=()):
        if not _PLAIN_ADDRESS.fullmatch(recip):
            return super().rcpt(recip, options)
        self.putcmd("rcpt", f"to:<{recip}>{_options(self, options)}")
        return self.getreply()

    def close(self):
        super().close()
        self.guard.close()


class GuardedSMTP_SSL(smtplib.SMTP_SSL, GuardedSMTP):
    """Implicit TLS over GuardedSMTP's socket (SMTP_SSL wraps what GuardedSMTP connects)."""

    def __init__(self, *args, guard, **kwargs):
        # SMTP_SSL calls SMTP.__init__ by name, skipping GuardedSMTP's: set its attributes.
        self.guard, self.last_reply = guard, (None, b"")
        smtplib.SMTP_SSL.__init__(self, *args, **kwargs)


class AccountBackend(EmailBackend):
    """Django's SMTP backend with netguard'ed sockets, the account's trust store and an
    overall deadline (`guard`) for opening the connection and for each send.

    Sending goes through sendmail() below, not Django's send_messages(): Django's `_send`
    throws away smtplib's refused-recipients dict, and the outbox records it per recipient.
    test_senders_smtp.py fails if Django stops exposing the open smtplib connection as
    `connection`, which this relies on.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = SocketGuard()

    @property
    def connection_class(self):
        return partial(GuardedSMTP_SSL if self.use_ssl else GuardedSMTP, guard=self.guard)

    def open(self):
        try:
            opened = super().open()
            if opened:
                self.log_in()
            return opened
        finally:
            self.guard.disarm()

    def log_in(self):
        """A login step after Django's open(), within the same deadline (none here: Django's
        open() logs in with the password)."""

    def close(self):
        self.guard.arm()  # QUIT waits for an answer too
        try:
            super().close()
        finally:
            self.guard.close()

    def sendmail(self, envelope_from, recipients, data):
        """Send on the open connection within the deadline. Returns Delivery's parts:
        (refused {address: (code, reply)}, the final (code, reply)). Raises smtplib's errors."""
        self.guard.arm()
        try:
            refused = self.connection.sendmail(envelope_from, recipients, data)
        finally:
            self.guard.disarm()
        return refused, self.connection.last_reply

    @cached_property
    def ssl_context(self):
        return tls_context()

    def abort(self):
        """Drop the connection without QUIT: after a failure the server may never answer."""
        for connection in (self._partial_connection, self.connection):
            if connection is not None:
                connection.close()
        self._partial_connection = self.connection = None


class XOAuth2Backend(AccountBackend):
    """AccountBackend that logs in with AUTH XOAUTH2 and an access token, not a password."""

    def __init__(self, *, access_token, **kwargs):
        super().__init__(password="", **kwargs)
        self.access_token = access_token

    def log_in(self):
        # Django's open() connected and secured the line; without a password it logged in
        # with nothing, and the token login follows. Raises xoauth2.XOAuth2Refused or
        # another smtplib error.
        xoauth2.authenticate(self.connection, self.username, self.access_token)


class SmtpSender(Sender):
    """Delivers through `account.host:port`; one connection serves every send() until close().

    send() without open() connects for that one message. After a failure that breaks the
    connection, the next send() connects again.
    """

    def connect(self):
        """Connect, secure and log in. Raises TemporaryFailure or ConfigurationError."""
        backend = self._make_backend()
        try:
            self._call(backend.open, backend=backend)
        except BaseException as err:
            backend.abort()  # a half-open session (e.g. login refused) is not kept
            if isinstance(err.__cause__, xoauth2.XOAuth2Refused):
                oauth.forget_access_token(self.account)  # the next try gets a new one
            raise
        return backend

    def disconnect(self, backend):
        """QUIT and close; never raises."""
        try:
            backend.close()
        except (smtplib.SMTPException, OSError):
            backend.abort()

    def prepare(self, message):
        """The message with a Message-ID on the account's domain. Raises PermanentFailure."""
        message = super().prepare(message)
        headers = {name.lower() for name in message.extra_headers}
        if "message-id" not in headers:
            domain = self.account.email.rpartition("@")[2]
            message_id = make_msgid(domain=domain)
            message.extra_headers = {**message.extra_headers, "Message-ID": message_id}
        return message

    def render(self, message):
        """The RawMessage for `message`: envelope sender account.email, the recipients and
        the bytes Django's EmailMessage makes. Raises PermanentFailure."""
        return self._wire_form(self.prepare(message))

    def deliver(self, message):
        """Send with the envelope sender account.email. Returns the Delivery: the Message-ID
        header as provider id, the reply to DATA, each recipient accepted or refused."""
        raw = message if isinstance(message, RawMessage) else self._wire_form(message)
        refused, (code, reply) = self._call(
            self.backend.sendmail, raw.envelope_from, raw.recipients, raw.data
        )
        return Delivery(
            provider_id=raw.message_id, code=code,
            reply=reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply,
            recipients=recipient_results(raw.recipients, refused),
        )  # fmt: skip

    @property
    def where(self):
        return f"{self.account.host}:{self.account.port}"

    @sensitive_variables("password")
    def _make_backend(self):
        """An unopened AccountBackend for the account. Raises ConfigurationError."""
        account = self.account
        password = "" if account.uses_oauth else self._password()
        if account.security == Security.NONE and (account.username or password):
            raise ConfigurationError(
                f"{account} has TLS/SSL set to None, so its password would cross the network "
                "unencrypted; choose STARTTLS or SSL/TLS, or clear the User for a relay that "
                "needs no login."
            )
        if account.username and not password and not account.uses_oauth:
            raise ConfigurationError(f"{account} has a User but no password; enter the password.")
        options = {
            "host": account.host,
            "port": account.port,
            "username": account.username,
            "use_tls": account.security == Security.STARTTLS,
            "use_ssl": account.security == Security.SSL,
            "timeout": settings.SMTP_ACCOUNTS_TIMEOUT,
        }
        if account.uses_oauth:
            backend = XOAuth2Backend(access_token=oauth.access_token(account), **options)
        else:
            backend = AccountBackend(password=password, **options)
        backend.ssl_context  # noqa: B018 -- load SMTP_ACCOUNTS_CA_FILE now, to fail clearly
        return backend

    @sensitive_variables("password")
    def _password(self):
        try:
            return self.account.get_password()
        except crypto.UndecryptableSecret as err:
            raise ConfigurationError(
                "The stored password cannot be decrypted (the key that encrypted it is no "
                "longer in FERNET_KEYS); re-enter the password."
            ) from err

    def _call(self, function, *args, backend=None):
        """Run a network step; translate its failure, dropping a connection it broke."""
        backend = backend or self.backend
        try:
            return function(*args)
        except NETWORK_ERRORS as err:
            # The deadline cut the conversation off: say so, not "connection closed".
            fired = backend.guard.fired
            translated = self._translate(DeadlineExceeded(backend.guard.seconds) if fired else err)
            if _breaks_connection(err):
                backend.abort()
                if backend is self.backend:
                    self.backend = None
            raise translated from err

    def _translate(self, err):
        """The TemporaryFailure, PermanentFailure or ConfigurationError for `err`."""
        error_class, reason = describe_error(err, self.account)  # the password is redacted
        logger.info("%s via %s: %s", error_class.__name__, self.where, reason)
        if (before_data := throttling(err)) is not None:
            return Throttled(reason, code=_smtp_code(err), before_data=before_data)
        if error_class is ConfigurationError:
            return error_class(reason, code=_smtp_code(err))
        refused = getattr(err, "recipients", None)  # SMTPRecipientsRefused: all refused
        results = recipient_results((), refused) if isinstance(refused, dict) else ()
        return error_class(reason, code=_smtp_code(err), recipients=results)

    def _wire_form(self, message):
        """The RawMessage of a prepared EmailMessage. Raises PermanentFailure."""
        encoding = message.encoding or settings.DEFAULT_CHARSET
        envelope_from = envelope_addresses([self.account.email], encoding)[0]
        recipients = envelope_addresses(message.recipients(), encoding)
        mime = message.message()
        data = mime.as_bytes(linesep="\r\n")
        return RawMessage(envelope_from, recipients, data, message_id=mime["Message-ID"])


# An address that sanitize_address() returns unchanged: a dot-atom local part (RFC 5322
# 3.2.3) at an ASCII host name, no display name. Most recipients are such; parsing each with
# Django's sanitize_address costs tens of microseconds.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
)


def _options(smtp, options):
    """ESMTP parameters after MAIL FROM / RCPT TO, as smtplib writes them."""
    return " " + " ".join(options) if options and smtp.does_esmtp else ""


def envelope_addresses(addresses, encoding):
    """`addresses` as smtplib gets them for MAIL FROM / RCPT TO: Django's sanitize_address()
    (names and non-ASCII local parts encoded, IDNA domains). Raises PermanentFailure for a
    bad one."""
    try:
        return [address if _PLAIN_ADDRESS.fullmatch(address)
                else sanitize_address(address, encoding) for address in addresses]  # fmt: skip
    except ValueError as err:
        raise PermanentFailure(f"The message has an invalid address: {err}.") from err


def _smtp_code(err):
    """The server's reply code in `err`, if it carries one (the first refused recipient's)."""
    code = getattr(err, "smtp_code", None)
    if code is None and isinstance(getattr(err, "recipients", None), dict) and err.recipients:
        code = next(iter(err.recipients.values()))[0]
    return code if isinstance(code, int) and code > 0 else None


def _breaks_connection(err):
    """True when the SMTP session cannot be used after `err` (the next send reconnects)."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _text in err.recipients.values())
    if isinstance(err, smtplib.SMTPResponseException):
        return err.smtp_code == 421 or err.smtp_code < 0
    return True
