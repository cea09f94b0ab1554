"""Reading a bounce: who could not be reached, why, and which message of ours it was.

flufl.bounce (GNU Mailman's bounce detectors) decides *who* failed, for RFC 3464 delivery
status notifications and the common non-standard forms (Exim, qmail, old Exchange, Yahoo …).
This module adds what flufl.bounce does not give: each recipient's Status and
Diagnostic-Code from the message/delivery-status part (the reason an admin reads), and the
original Message-ID from the returned message (message/rfc822) or its headers
(text/rfc822-headers), by which the outbox finds the message that bounced.
"""

import email
import email.policy
import logging
from dataclasses import dataclass

from flufl.bounce import all_failures

__all__ = ["BounceReport", "Failure", "parse_bounce"]

logger = logging.getLogger(__name__)

REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global-headers")


@dataclass(frozen=True)
class Failure:
    """One recipient the bounce reports: `email` (lower case), `permanent` (a 5.x.x failure,
    else a delay), `status` ("5.1.1", or "") and `reason`, a sentence for the history."""

    email: str
    permanent: bool
    status: str
    reason: str


@dataclass(frozen=True)
class BounceReport:
    """What one bounce says: the original Message-ID ("" when it was not returned) and the
    failures (empty for a report that tells only of success, such as a relay notice)."""

    original_message_id: str
    failures: tuple

    @property
    def permanent(self):
        return [failure for failure in self.failures if failure.permanent]

    @property
    def temporary(self):
        return [failure for failure in self.failures if not failure.permanent]


def parse_bounce(raw):
    """Read the mail `raw` (bytes). Returns a BounceReport, or None when it is not a bounce
    (an ordinary message, an auto-reply). Never raises for malformed mail: mail that cannot
    be read as a bounce is not one."""
    message = email.message_from_bytes(raw)  # compat32: the Message API flufl.bounce expects
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on odd mail must not stop the mailbox being read
        logger.warning("The bounce detectors could not read a message", exc_info=True)
        temporary, permanent = frozenset(), frozenset()
    details = _recipient_details(message)
    if not (temporary or permanent or _is_delivery_report(message)):
        return None
    failures = [_failure(address, True, details) for address in sorted(permanent)]
    failures += [
        _failure(address, False, details) for address in sorted(temporary - permanent)
    ]
    return BounceReport(_original_message_id(message), tuple(failures))


def _failure(address, permanent, details):
    address = _text(address).strip().strip("<>").lower()
    status, diagnostic = details.get(address, ("", ""))
    if diagnostic:
        reason = diagnostic
    elif status:
        reason = f"The receiving server reported status {status}."
    elif permanent:
        reason = "The receiving server reported that the message cannot be delivered."
    else:
        reason = "The receiving server reported a delay; it is still trying."
    return Failure(address, permanent, status, reason)


def _is_delivery_report(message):
    return message.get_content_type() == "multipart/report" and (
        message.get_param("report-type", "").lower() == "delivery-status"
    )


def _recipient_details(message):
    """{recipient: (status, diagnostic)} from every delivery-status part of `message`."""
    details = {}
    for part in message.walk():
        if part.get_content_type() not in REPORT_TYPES:
            continue
        # Blocks of header fields: the first is about the message, each later one about a
        # recipient (RFC 3464 §2.1).
        for block in _status_blocks(part)[1:]:
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient") or ""
            address = _address_of(recipient)
            if address:
                details[address] = (
                    _one_line(block.get("Status", "")),
                    _one_line(_address_of(block.get("Diagnostic-Code", ""), keep_text=True)),
                )
    return details


def _status_blocks(part):
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload  # the email package parses delivery-status into one Message per block
    text = part.get_payload(decode=True) or b""
    return [
        email.message_from_string(block)
        for block in _text(text).replace("\r\n", "\n").split("\n\n")
        if block.strip()
    ]


def _address_of(field, keep_text=False):
    """The value after the type of a DSN field: "rfc822; A@B" -> "a@b" ("smtp; 550 …" ->
    "550 …" with keep_text)."""
    value = str(field).partition(";")[2] if ";" in str(field) else str(field)
    value = value.strip()
    return value if keep_text else value.strip("<>").lower()


def _original_message_id(message):
    """The Message-ID of the returned original, or "" when the bounce returned none."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type not in ORIGINAL_TYPES:
            continue
        if content_type == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        else:
            text = _text(part.get_payload(decode=True) or b"")
            headers = email.message_from_string(text, policy=email.policy.compat32)
        if headers is not None and headers.get("Message-ID"):
            return _one_line(headers["Message-ID"])
    return ""


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _one_line(value):
    return " ".join(str(value).split())
