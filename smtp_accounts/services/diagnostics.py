"""Connection diagnostics: can an account reach its server, secure the line and log in?

`check_account` runs the steps in order and stops at the first that fails; it sends no mail.
SMTP: DNS, TCP, TLS, EHLO, login — through netguard (only allowed addresses; the host name
is kept for the certificate check) and with the SMTP sender's own TLS context and error
wording. Mailgun: that MAILGUN_API_KEY is set and accepted, and that the domain is known.
"""

import smtplib
import ssl
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import quote

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from .. import crypto, netguard
from ..models import Security
from ..senders.base import ConfigurationError
from ..senders.deadline import DeadlineExceeded, SocketGuard
from ..senders.smtp import tls_context
from ..senders.smtp_errors import NETWORK_ERRORS, describe_error

__all__ = ["CheckResult", "CheckStep", "check_account"]


@dataclass
class CheckStep:
    """One step: its name, whether it passed, what was seen (or what to fix), its duration."""

    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class CheckResult:
    """The steps that ran for one account; the last one failed unless `ok`."""

    account_id: int
    account_name: str
    steps: list = field(default_factory=list)

    @property
    def ok(self):
        return all(step.ok for step in self.steps)

    @property
    def failure(self):
        """The step that failed, or None."""
        return next((step for step in self.steps if not step.ok), None)

    def as_dict(self):
        """Plain JSON types, for `--json`."""
        return {"id": self.account_id, "name": self.account_name, "ok": self.ok,
                "steps": [asdict(step) for step in self.steps]}


class StepFailed(Exception):
    """A step found a problem; `detail` says what it is and how to fix it."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail


def check_account(account):
    """Diagnose `account` without sending anything; return a CheckResult. Never raises for
    a failed check: the failing step carries the reason."""
    probe = MailgunProbe(account) if account.is_external else SmtpProbe(account)
    result = CheckResult(account.pk, account.name)
    try:
        for name, run in probe.steps():
            step = _timed(name, run)
            result.steps.append(step)
            if not step.ok:
                break
    finally:
        probe.close()
    return result


def _timed(name, run):
    started = time.monotonic()
    try:
        ok, detail = True, run()
    except StepFailed as err:
        ok, detail = False, err.detail
    return CheckStep(name, ok, detail, round(time.monotonic() - started, 6))


class SmtpProbe:
    """The SMTP steps over one connection; each method returns what it saw or raises
    StepFailed with the sender's wording of the error."""

    def __init__(self, account):
        self.account = account
        self.timeout = settings.SMTP_ACCOUNTS_TIMEOUT
        self.smtp = smtplib.SMTP(timeout=self.timeout)  # given no host, it connects nothing
        self.smtp._host = account.host  # the name TLS verifies the certificate against
        self.sock = None
        # Connect to login within one overall deadline, as the sender does: a tarpit that
        # trickles its greeting cannot hold the command.
        self.guard = SocketGuard()

    def steps(self):
        return [("DNS", self.resolve), ("TCP", self.connect), ("TLS", self.secure),
                ("EHLO", self.ehlo), ("login", self.login)]

    def resolve(self):
        entries = self._guarded(netguard.resolve, self.account.host, self.account.port)
        addresses = dict.fromkeys(entry[4][0] for entry in entries)
        return f"{self.account.host} -> {', '.join(addresses)}"

    def connect(self):
        account = self.account
        # netguard resolves again and checks the address actually connected to, as the
        # sender does: what the DNS step saw is not trusted for the connection itself.
        self.sock = self._guarded(netguard.create_connection, account.host, account.port,
                                  self.timeout)
        self.guard.watch(self.sock)
        self.guard.arm()
        peer = self.sock.getpeername()[0]
        if account.security == Security.SSL:
            return f"connected to {peer} port {account.port}"
        return f"connected to {peer} port {account.port}; {self._greeting()}"

    def secure(self):
        if self.account.security == Security.NONE:
            return "not encrypted: TLS/SSL is None (allowed only for a relay without login)"
        context = self._context()
        if self.account.security == Security.SSL:
            self.sock = self._guarded(context.wrap_socket, self.sock,
                                      server_hostname=self.account.host)
            greeting = self._greeting()
        else:
            self._guarded(self.smtp.ehlo_or_helo_if_needed)
            self._guarded(self.smtp.starttls, context=context)
            self.sock, greeting = self.smtp.sock, ""
        return _describe_tls(self.sock) + (f"; {greeting}" if greeting else "")

    def ehlo(self):
        code, _reply = self._guarded(self.smtp.ehlo)
        if code != 250:
            raise StepFailed(f"The server refused EHLO ({code}); it may not be a mail server.")
        features = self.smtp.esmtp_features.items()
        return " ".join(f"{name.upper()} {value.strip()}".strip() for name, value in features)

    @sensitive_variables("password")
    def login(self):
        account = self.account
        if not account.username:
            return "skipped: no User set (a relay that needs no login)"
        if account.security == Security.NONE:
            raise StepFailed("TLS/SSL is None, so the password would cross the network "
                             "unencrypted; choose STARTTLS or SSL/TLS.")
        try:
            password = account.get_password()
        except crypto.UndecryptableSecret as err:
            raise StepFailed(str(err)) from err
        self._guarded(self.smtp.login, account.username, password)
        return f"logged in as {account.username}"

    def close(self):
        try:
            if self.smtp.sock is not None:
                self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        self.smtp.close()
        if self.sock is not None:
            self.sock.close()
        self.guard.close()

    def _context(self):
        try:
            return tls_context()
        except ConfigurationError as err:
            raise StepFailed(err.reason) from err

    def _greeting(self):
        """Read the server's 220 greeting on the socket now in use. Raises StepFailed."""
        self.smtp.sock, self.smtp.file = self.sock, None
        code, text = self._guarded(self.smtp.getreply)
        if code != 220:
            self._fail(smtplib.SMTPConnectError(code, text))
        return f"server says {code} {text.decode('utf-8', 'replace')}"

    def _guarded(self, function, *args, **kwargs):
        """Run a network call; turn its failure into StepFailed, worded as the sender does."""
        try:
            result = function(*args, **kwargs)
        except ImproperlyConfigured as err:  # e.g. a malformed SMTP_ACCOUNTS_ALLOWED_NETWORKS
            raise StepFailed(str(err)) from err
        except NETWORK_ERRORS as err:
            self._fail(DeadlineExceeded(self.guard.seconds) if self.guard.fired else err)
        if self.guard.fired:  # cut off mid-reply: what was read is only part of it
            self._fail(DeadlineExceeded(self.guard.seconds))
        return result

    def _fail(self, err):
        _kind, reason = describe_error(err, self.account)  # the password is redacted
        raise StepFailed(reason) from err


def _describe_tls(sock):
    """ "TLSv1.3; certificate for localhost, expires in 89 days" for a TLS socket."""
    cert = sock.getpeercert() or {}
    subject = dict(pair for rdn in cert.get("subject", ()) for pair in rdn)
    name = subject.get("commonName") or ", ".join(
        value for _kind, value in cert.get("subjectAltName", ())
    )
    text = f"{sock.version()}; certificate for {name or 'an unnamed subject'}"
    if "notAfter" in cert:
        days = int((ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) // 86400)
        text += f", expires in {days} day{'' if days == 1 else 's'}"
    return text


class MailgunProbe:
    """The Mailgun steps: the API key is set, Mailgun accepts it, the domain is known."""

    def __init__(self, account):
        self.account = account
        self.response = None

    def steps(self):
        return [("API key", self.api_key), ("Mailgun API", self.request),
                ("domain", self.domain)]

    def api_key(self):
        if not settings.MAILGUN_API_KEY:
            raise StepFailed("MAILGUN_API_KEY is not set; set it to the deployment's Mailgun "
                             "API key to send through external provider accounts.")
        return "MAILGUN_API_KEY is set"

    def request(self):
        url = f"{settings.MAILGUN_API_URL.rstrip('/')}/domains/{quote(self.account.domain)}"
        try:
            self.response = requests.get(url, auth=("api", settings.MAILGUN_API_KEY),
                                         timeout=settings.SMTP_ACCOUNTS_TIMEOUT)
        except requests.Timeout as err:
            raise StepFailed(f"Timed out after {float(settings.SMTP_ACCOUNTS_TIMEOUT):g} s "
                             f"talking to Mailgun ({settings.MAILGUN_API_URL}).") from err
        except requests.RequestException as err:
            raise StepFailed(f"Could not reach Mailgun at {settings.MAILGUN_API_URL} "
                             f"({type(err).__name__}); check MAILGUN_API_URL.") from err
        status = self.response.status_code
        if status in (401, 403):
            raise StepFailed(f"Mailgun rejected the API key ({status}): check MAILGUN_API_KEY, "
                             "and that MAILGUN_API_URL is your account's region "
                             "(EU: https://api.eu.mailgun.net/v3).")
        if status == 429 or status >= 500:
            raise StepFailed(f"Mailgun is not answering normally ({status} {self._said()}); "
                             "try again in a few minutes.")
        return f"the API key is accepted ({settings.MAILGUN_API_URL})"

    def domain(self):
        domain, status = self.account.domain, self.response.status_code
        if status == 404 and "domain" not in self._said().lower():
            raise StepFailed(f"{self.response.url} answered 404 {self._said()}: check "
                             "MAILGUN_API_URL (e.g. https://api.mailgun.net/v3).")
        if status == 404:
            raise StepFailed(f"Mailgun does not know the domain {domain}: add and verify it in "
                             "Mailgun, or check that MAILGUN_API_URL is the region the domain "
                             "lives in.")
        if status != 200:
            raise StepFailed(f"Mailgun answered {status} {self._said()} for {domain}.")
        state = (self._json().get("domain") or {}).get("state", "unknown")
        if state != "active":
            raise StepFailed(f"Mailgun knows {domain} but its state is {state!r}: finish its "
                             "DNS verification in Mailgun before sending from it.")
        return f"{domain} is known to Mailgun (state: {state})"

    def close(self):
        if self.response is not None:
            self.response.close()

    def _json(self):
        try:
            body = self.response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _said(self):
        return self._json().get("message") or self.response.text.strip()[:200]
