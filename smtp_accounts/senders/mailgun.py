"""Sends through Mailgun's HTTP API, over django-anymail's Mailgun backend.

The deployment has one Mailgun API key (settings.MAILGUN_API_KEY); an external account
names its sending domain. Anymail does the request; this module classifies its errors:
429, 5xx, timeouts and network errors are temporary; a rejected key or an unknown domain is
a configuration error; any other 4xx refuses this message for good.
"""

import logging
from email.utils import parseaddr
from html import escape

import requests
from anymail.backends.mailgun import EmailBackend as MailgunBackend
from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from django.conf import settings

from .base import (
    ConfigurationError,
    Delivery,
    PermanentFailure,
    Sender,
    TemporaryFailure,
    Throttled,
    recipient_results,
)
from .placeholders import PLACEHOLDER, names

# In an HTML body a placeholder names its HTML-escaped value, sent under this prefix:
# Mailgun fills values as they are, the SMTP path escapes them (placeholders.fill).
HTML_VALUE = "html:"

logger = logging.getLogger(__name__)


class MailgunSender(Sender):
    """Delivers through Mailgun for `account.domain`; one HTTP session until close()."""

    can_batch = True

    def connect(self):
        """Prepare the HTTP session. Raises ConfigurationError when no API key is set."""
        if not settings.MAILGUN_API_KEY:
            raise ConfigurationError(
                "MAILGUN_API_KEY is not set; set it in the environment to send through "
                "Mailgun (external provider accounts)."
            )
        backend = MailgunBackend(
            api_key=settings.MAILGUN_API_KEY,
            sender_domain=self.account.domain,
            api_url=settings.MAILGUN_API_URL,
            timeout=settings.SMTP_ACCOUNTS_TIMEOUT,
        )
        backend.open()
        return backend

    def disconnect(self, backend):
        try:
            backend.close()
        except requests.RequestException:
            logger.debug("Closing the Mailgun session failed", exc_info=True)

    def deliver(self, message):
        """Send through Mailgun's API. Returns the Delivery: Mailgun's message id, every
        recipient accepted (Mailgun reports refusals later, by webhook)."""
        try:
            self.backend.send_messages([message])  # anymail records its status on the copy
        except AnymailError as err:
            raise self._translate(err) from err
        return Delivery(provider_id=message.anymail_status.message_id or "", code=200,
                        recipients=recipient_results(message.recipients()))  # fmt: skip

    def deliver_batch(self, message, recipients):
        """One Mailgun call for every recipient (at most 1,000, distinct: the caller splits
        and de-duplicates), with recipient-variables: anymail's merge_data for the
        placeholders, merge_headers for each recipient's own headers. Returns a Delivery per
        recipient, all with the call's Mailgun id."""
        html = _html_alternatives(message)
        used = names(message.subject, message.body, *(content for content, _ in html))
        html_used = names(*(content for content, _ in html))
        message.alternatives = [(PLACEHOLDER.sub(rf"%recipient.{HTML_VALUE}\1%", content), kind)
                                for content, kind in message.alternatives]  # fmt: skip
        message.merge_data, message.merge_headers = {}, {}
        for recipient in recipients:
            address = parseaddr(recipient.to)[1]
            values = {name: recipient.values.get(name, "") for name in used}  # missing: ""
            values.update({HTML_VALUE + name: escape(values[name]) for name in html_used})
            message.merge_data[address] = values
            if recipient.headers:
                message.merge_headers[address] = recipient.headers
        delivery = self.deliver(message)
        return [Delivery(provider_id=delivery.provider_id, code=delivery.code,
                         recipients=recipient_results([r.to])) for r in recipients]  # fmt: skip

    def _translate(self, err):
        """The TemporaryFailure, PermanentFailure or ConfigurationError for an AnymailError."""
        error_class, reason = describe_error(err, self.account)
        api_key = settings.MAILGUN_API_KEY
        if api_key and api_key in reason:
            reason = reason.replace(api_key, "********")
        logger.info("%s via Mailgun for %s: %s", error_class.__name__, self.account.domain, reason)
        status = getattr(err, "status_code", None)
        if status == 429:  # Mailgun's rate limit: pause the account, as long as it asks
            return Throttled(reason, code=status, retry_after=_retry_after(err))
        return error_class(reason, code=status)


def _html_alternatives(message):
    return [(content, kind) for content, kind in getattr(message, "alternatives", ())
            if kind == "text/html"]  # fmt: skip


def _retry_after(err):
    """Seconds from a 429's Retry-After header (a number of seconds), or None."""
    value = getattr(getattr(err, "response", None), "headers", {}).get("Retry-After", "")
    return int(value) if str(value).strip().isdigit() else None


def describe_error(err, account):
    """(error class, reason) for an AnymailError raised while sending for `account`."""
    if not isinstance(err, AnymailRequestsAPIError):
        # Raised before any request: an invalid address, a feature Mailgun lacks …
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        return PermanentFailure, f"Mailgun cannot send this message: {first_line}"
    if err.status_code is None:
        return _network_error(err)
    return _http_error(err, account)


def _network_error(err):
    url = settings.MAILGUN_API_URL
    if isinstance(err, requests.Timeout):
        seconds = f"{float(settings.SMTP_ACCOUNTS_TIMEOUT):g}"
        return TemporaryFailure, f"Timed out after {seconds} s talking to Mailgun ({url})."
    cause = err.__cause__ or err
    return TemporaryFailure, f"Could not reach Mailgun at {url} ({type(cause).__name__})."


def _mailgun_said(response):
    """Mailgun's own explanation: the JSON "message", else the start of the body."""
    try:
        said = response.json().get("message")
    except (ValueError, AttributeError):
        said = None
    return said or response.text.strip()[:200] or response.reason


def _http_error(err, account):
    status, said = err.status_code, _mailgun_said(err.response)
    if status == 401:
        return ConfigurationError, (
            f"Mailgun rejected the API key ({status} {said}): check MAILGUN_API_KEY, and that "
            "MAILGUN_API_URL is your account's region (EU: https://api.eu.mailgun.net/v3)."
        )
    if status == 403:
        # The key is valid but may not send for this domain (a domain-scoped sending key of
        # another domain, or a disabled domain): the account is misconfigured, not the mail.
        return ConfigurationError, (
            f"Mailgun refused to send for {account.domain} with this API key ({status} {said}): "
            "check that MAILGUN_API_KEY may send for the domain, and that the domain is "
            "active in Mailgun."
        )
    if status == 404 and "domain not found" in said.lower():
        return ConfigurationError, (
            f"Mailgun does not know the domain {account.domain}: add and verify it in Mailgun, "
            "or check that MAILGUN_API_URL is the region the domain lives in."
        )
    if status == 404:
        return ConfigurationError, (
            f"{settings.MAILGUN_API_URL} has no Mailgun messages API (404 {said}); check "
            "MAILGUN_API_URL, e.g. https://api.mailgun.net/v3."
        )
    if status == 429 or status >= 500:
        return TemporaryFailure, f"Mailgun could not take the message now ({status} {said})."
    if 200 <= status < 300:
        return ConfigurationError, (
            f"{settings.MAILGUN_API_URL} did not answer like Mailgun's API; check MAILGUN_API_URL."
        )
    return PermanentFailure, f"Mailgun refused the message ({status} {said})."
