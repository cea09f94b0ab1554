"""What went wrong talking to an account's SMTP server, in words an admin can act on.

`describe_error` sorts an smtplib, ssl, socket or netguard exception into TemporaryFailure
(retry later), PermanentFailure (this message will never go) or ConfigurationError (fix the
account), with a reason that names the server and, where there is one, the usual fix.
Used by the SMTP sender and by the connection diagnostics, so both say the same thing.
"""

import smtplib
import ssl

from django.conf import settings

from .. import crypto, netguard
from ..models import Security
from .base import ConfigurationError, PermanentFailure, TemporaryFailure
from .deadline import TIMEOUTS_PER_DEADLINE, DeadlineExceeded
from .xoauth2 import XOAuth2Refused, explain

__all__ = ["LOGIN_HINTS", "NETWORK_ERRORS", "describe_error", "throttling"]

# What talking to a server can raise; describe_error explains each of them.
# (Every smtplib and ssl error is also an OSError; they are listed for the reader.)
NETWORK_ERRORS = (
    smtplib.SMTPException,
    OSError,
    netguard.HostNotAllowed,
    netguard.HostUnresolvable,
)

# Why a login is refused, by provider: the usual fix is not "retype the password".
LOGIN_HINTS = {
    ("gmail.com", "googlemail.com"): (
        "Gmail needs an App Password (Google Account > Security > App passwords), "
        "not the account's normal password"
    ),
    ("outlook.com", "office365.com", "hotmail.com", "live.com"): (
        "Outlook needs an App Password or OAuth; most Microsoft accounts refuse plain passwords"
    ),
    ("yahoo.com",): "Yahoo needs an App Password (Account security > Generate app password)",
    ("comcast.net",): "Comcast needs the full email address as User and its own password",
}


def describe_error(err, account):
    """(error class, reason) for an exception raised while talking to the account's server.

    The error class is TemporaryFailure, PermanentFailure or ConfigurationError. The reason
    never contains the account's password, should a server ever echo it back.
    """
    error_class, reason = _classify(err, account)
    return error_class, _redact(reason, account)


# Words of replies that say a sending quota or rate was exceeded (Gmail's 550 5.4.5 "Daily
# user sending quota exceeded", Exchange's 554 5.2.0 "SubmissionQuotaExceededException").
QUOTA_WORDS = ("quota", "rate limit", "too many messages", "submissionquotaexceeded")


def throttling(err):
    """Whether `err` is the server throttling the CRM (DESIGN.md, Routing): returns None when
    it is not, else True when nothing of the message was accepted yet (before DATA) and
    False when it came as the answer to the message's data."""
    code = getattr(err, "smtp_code", None)
    refused = getattr(err, "recipients", None)
    if code is None and isinstance(refused, dict):  # RCPT: a 421 refuses every recipient
        code = 421 if any(answer[0] == 421 for answer in refused.values()) else None
    if code is None:
        return None
    said = _server_said(code, getattr(err, "smtp_error", b"")).lower()
    at_mail = isinstance(err, smtplib.SMTPSenderRefused)
    quota = code in (550, 554) and any(word in said for word in QUOTA_WORDS)
    if code == 421 or code == 432 or quota or (at_mail and code in (450, 451, 452)):
        return not isinstance(err, smtplib.SMTPDataError)
    return None


def _classify(err, account):
    for types, describe in _DESCRIBERS:
        if isinstance(err, types):
            return describe(err, account)
    return TemporaryFailure, f"Could not talk to {_where(account)} ({err})."


def _redact(text, account):
    try:
        password = account.get_password()
    except crypto.UndecryptableSecret:
        return text  # a password nobody can read cannot be in the text either
    return text.replace(password, "********") if password else text


def _where(account):
    return f"{account.host}:{account.port}"


def _server_said(code, text):
    """ "421 4.3.2 Busy" from an smtplib code and its bytes."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _port_hint(account):
    if account.port == 465 and account.security != Security.SSL:
        return " Port 465 usually needs TLS/SSL set to SSL/TLS."
    if account.port == 587 and account.security == Security.SSL:
        return " Port 587 usually needs TLS/SSL set to STARTTLS."
    return ""


def _login_hint(host):
    for domains, hint in LOGIN_HINTS.items():
        if any(host == domain or host.endswith("." + domain) for domain in domains):
            return hint
    return "check the User and Password"


# One describer per exception type: (error class, reason) for `err` raised talking to `account`.


def _login_refused(err, account):
    said = _server_said(err.smtp_code, err.smtp_error)
    hint = _login_hint(account.host)
    return ConfigurationError, f"The server rejected the login ({said}): {hint}."


def _token_refused(err, account):
    said = _server_said(err.smtp_code, err.smtp_error)
    return ConfigurationError, (
        f"The server refused the sign-in token ({said}): {explain(err.details, account)}."
    )


def _recipients_refused(err, account):
    refusals = err.recipients.items()
    # Nothing was sent, so a retry is safe whenever any refusal is only temporary.
    temporary = any(400 <= code < 500 for _rcpt, (code, _text) in refusals)
    listing = ", ".join(f"{rcpt} ({_server_said(*answer)})" for rcpt, answer in refusals)
    return (TemporaryFailure if temporary else PermanentFailure), (
        f"The server refused the recipients: {listing}."
    )


def _sender_refused(err, account):
    where, said = _where(account), _server_said(err.smtp_code, err.smtp_error)
    if 400 <= err.smtp_code < 500:
        return TemporaryFailure, f"{where} refused the sender for now ({said})."
    if err.smtp_code == 530 and "STARTTLS" in said.upper():
        return ConfigurationError, f"{where} requires encryption ({said}): set TLS/SSL to STARTTLS."
    if err.smtp_code == 530:
        return ConfigurationError, (
            f"{where} requires a login ({said}): enter the User and Password, "
            "with TLS/SSL set to STARTTLS or SSL/TLS."
        )
    return ConfigurationError, (
        f"{where} refused the sender {account.email} ({said}): use an Email "
        "address this login may send as."
    )


def _connect_refused(err, account):
    where, said = _where(account), _server_said(err.smtp_code, err.smtp_error)
    if err.smtp_code < 0:
        return ConfigurationError, (
            f"{where} did not answer like a mail (SMTP) server; check the Host, "
            f"the Port and TLS/SSL.{_port_hint(account)}"
        )
    if 400 <= err.smtp_code < 500:
        return TemporaryFailure, f"{where} is not accepting mail right now ({said})."
    return ConfigurationError, f"{where} refused the connection ({said})."


def _not_supported(err, account):
    if "XOAUTH2" in str(err):
        return ConfigurationError, (
            f"{_where(account)} does not offer the OAuth sign-in (AUTH XOAUTH2); check the "
            "Host (Gmail: smtp.gmail.com, Microsoft 365: smtp.office365.com) or choose "
            "Password as the Sign-in."
        )
    if "STARTTLS" in str(err):
        return ConfigurationError, (
            f"{_where(account)} does not offer STARTTLS; choose SSL/TLS if the server expects "
            "TLS from the start (usually port 465), or ask the mail admin to enable it."
        )
    return ConfigurationError, (
        f"{_where(account)} does not offer a login (AUTH) on this connection ({err}); check "
        "the Host, Port and TLS/SSL, or clear the User for a relay that needs no login."
    )


def _response(err, account):
    said = _server_said(err.smtp_code, err.smtp_error)
    # smtplib's starttls() raises the bare SMTPResponseException for any answer but 220;
    # every other command has its own subclass. Nothing was sent yet: it is about TLS.
    if type(err) is smtplib.SMTPResponseException and account.security == Security.STARTTLS:
        return TemporaryFailure, (
            f"{_where(account)} could not start TLS ({said}). The server offers STARTTLS but "
            "failed to begin it, usually a problem with its own certificate or TLS setup: try "
            "again later, and if it persists ask the mail admin, or try SSL/TLS on port 465."
        )
    if 400 <= err.smtp_code < 500:
        return TemporaryFailure, f"{_where(account)} deferred the message ({said})."
    return PermanentFailure, f"{_where(account)} refused the message ({said})."


def _disconnected(err, account):
    # smtplib reports a read that timed out as a disconnection; the cause tells them apart.
    if isinstance(err.__context__, TimeoutError):
        return _timeout(err.__context__, account)
    return TemporaryFailure, f"The connection to {_where(account)} closed unexpectedly."


def _smtp_other(err, account):
    return ConfigurationError, f"{_where(account)}: {err}."


def _untrusted(err, account):
    detail = err.verify_message or err.reason or str(err)
    return ConfigurationError, (
        f"The certificate of {account.host} is not trusted ({detail}). If it is your "
        "company's own CA, set SMTP_ACCOUNTS_CA_FILE."
    )


def _tls_failed(err, account):
    return ConfigurationError, (
        f"The TLS handshake with {_where(account)} failed ({err.reason or err}); check that "
        f"TLS/SSL matches what the port expects.{_port_hint(account)}"
    )


def _timeout(err, account):
    seconds = f"{float(settings.SMTP_ACCOUNTS_TIMEOUT):g}"
    return TemporaryFailure, (
        f"Timed out after {seconds} s talking to {_where(account)}.{_port_hint(account)}"
    )


def _deadline(err, account):
    return TemporaryFailure, (
        f"{_where(account)} did not finish answering within {err.seconds:g} s "
        f"({TIMEOUTS_PER_DEADLINE} × SMTP_ACCOUNTS_TIMEOUT), so the CRM hung up; the server is "
        "overloaded, or slows callers down on purpose."
    )


def _refused(err, account):
    return TemporaryFailure, (
        f"{_where(account)} refused the connection; check the Port, or whether the server "
        "is running."
    )


def _os_error(err, account):
    return TemporaryFailure, f"Could not talk to {_where(account)} ({err.strerror or err})."


def _not_allowed(err, account):
    return ConfigurationError, err.reason


def _unresolvable(err, account):
    return (TemporaryFailure if err.temporary else ConfigurationError), err.reason


# Most specific first: every smtplib and ssl error is also an OSError.
_DESCRIBERS = [
    (netguard.HostNotAllowed, _not_allowed),
    (netguard.HostUnresolvable, _unresolvable),
    (XOAuth2Refused, _token_refused),
    (smtplib.SMTPAuthenticationError, _login_refused),
    (smtplib.SMTPRecipientsRefused, _recipients_refused),
    (smtplib.SMTPSenderRefused, _sender_refused),
    (smtplib.SMTPConnectError, _connect_refused),
    (smtplib.SMTPNotSupportedError, _not_supported),
    (smtplib.SMTPServerDisconnected, _disconnected),
    (smtplib.SMTPResponseException, _response),
    (smtplib.SMTPException, _smtp_other),
    (ssl.SSLCertVerificationError, _untrusted),
    (ssl.SSLError, _tls_failed),
    (DeadlineExceeded, _deadline),
    (TimeoutError, _timeout),
    (ConnectionRefusedError, _refused),
    (OSError, _os_error),
]
