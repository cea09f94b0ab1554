"""Wire forms of a batch's messages: a campaign's MIME is built once, not once per recipient.

Django's message building (EmailMessage.message() and as_bytes()) is most of a batch's CPU,
about 0.7 ms a message (bench/README.md), while a campaign's messages share everything but
the recipient. A Renderer has the sender render the first message of each content (From,
Subject, bodies, headers: the EmailMessage that message_as_email makes, after any per-row
substitution) and keeps its bytes cut at the To, Date and Message-ID header lines; a later
message of the same content gets those three lines written as Django's generator writes them
(the same Header encoding and folding), and the rest as is. A message whose content is its
own, or that sets To, Cc, Bcc or Date itself, is rendered whole, the Django way.
"""

import re
from email import policy
from email.utils import formatdate

from django.conf import settings
from django.core.mail.message import forbid_multi_line_headers

from smtp_accounts.senders import RawMessage, get_sender
from smtp_accounts.senders.smtp import envelope_addresses

from .enqueue import message_as_email

# How EmailMessage.as_bytes(linesep="\r\n") writes each header: Django's SafeMIME classes use
# the compat32 policy.
_HEADER_POLICY = policy.compat32.clone(linesep="\r\n")
_PER_MESSAGE = ("to", "date", "message-id")
_OWN_HEADERS = {"to", "cc", "bcc", "date"}  # set by a row itself: its message is its own
_FIELD_START = re.compile(rb"\r\n(?![ \t])")  # a header field ends where no fold continues it
_WHITE_SPACE = re.compile(r"\s")


class Renderer:
    """What the sender of `account` sends for each outbox row: a RawMessage, built from the
    template of its content when there is one, or an EmailMessage when the sender takes no
    bytes (Mailgun). One per batch: templates live as long as it does."""

    def __init__(self, account):
        self.sender = get_sender(account)  # renders only: never opened
        self._templates = {}  # content key -> _Template, or None when it has none

    def render(self, message):
        """The RawMessage (or EmailMessage) for the OutboundMessage `message`. Raises
        PermanentFailure or ValueError (a header with a line break) as the sender would."""
        email = message_as_email(message)
        key = _content_key(email)
        template = self._templates.get(key)
        if template is not None:
            return template.fill(email)
        raw = self.sender.render(email)
        if raw is None:
            return email
        if key is not None and key not in self._templates:
            self._templates[key] = _Template.cut(raw)
        return raw


class _Template:
    """A rendered message's bytes, cut at its To, Date and Message-ID header lines."""

    def __init__(self, parts, names, envelope_from):
        self.parts, self.names, self.envelope_from = parts, names, envelope_from
        self._dates = {}  # the Date header's value -> its line

    @classmethod
    def cut(cls, raw):
        """The template of `raw`, or None when its header does not have each of those lines
        exactly once."""
        head, blank, body = raw.data.partition(b"\r\n\r\n")
        fields = _FIELD_START.split(head)
        names = [field.partition(b":")[0].decode("ascii").lower() for field in fields]
        if not blank or sorted(n for n in names if n in _PER_MESSAGE) != sorted(_PER_MESSAGE):
            return None
        parts, slots = [b""], []
        for name, field in zip(names, fields, strict=True):
            if name in _PER_MESSAGE:
                slots.append(field.partition(b":")[0].decode("ascii"))
                parts.append(b"")
            else:
                parts[-1] += field + b"\r\n"
        parts[-1] += b"\r\n" + body
        return cls(parts, slots, raw.envelope_from)

    def fill(self, email):
        """The RawMessage of `email` (same content as the template's message)."""
        encoding = email.encoding or settings.DEFAULT_CHARSET
        values = {
            # As EmailMessage.message() sets them (To joined, Date formatted, Message-ID
            # from message_as_email) and SafeMIMEText.__setitem__ encodes them.
            "to": ", ".join(str(address) for address in email.to),
            "date": formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
            "message-id": email.extra_headers["Message-ID"],
        }
        data = [self.parts[0]]
        for name, part in zip(self.names, self.parts[1:], strict=True):
            data += (self._line(name, values[name.lower()], encoding), part)
        recipients = envelope_addresses(email.recipients(), encoding)
        return RawMessage(self.envelope_from, recipients, b"".join(data),
                          message_id=values["message-id"])  # fmt: skip

    def _line(self, name, value, encoding):
        """_header_line(), remembering the Date's: it changes once a second."""
        if name.lower() != "date":
            return _header_line(name, value, encoding)
        if value not in self._dates:
            self._dates = {value: _header_line(name, value, encoding)}
        return self._dates[value]


def _header_line(name, value, encoding):
    """The header line `name: value` as EmailMessage.as_bytes() writes it: SafeMIMEText's
    checks and encoding, then compat32's folding. A short ASCII value without white space is
    written as it is by both, so it skips them (they cost ~10 µs a header)."""
    if value.isascii() and len(name) + len(value) <= 76 and not _WHITE_SPACE.search(value):
        return f"{name}: {value}\r\n".encode("ascii")
    value = forbid_multi_line_headers(name, value, encoding)[1]
    return _HEADER_POLICY.fold_binary(name, value)


def _content_key(email):
    """What a message shares with the others of its campaign, or None when it has its own
    recipients' headers (Cc, Bcc, To or Date set by the row) or attachments."""
    headers = tuple((name, value) for name, value in email.extra_headers.items()
                    if name != "Message-ID")  # fmt: skip
    if email.cc or email.bcc or email.attachments or not email.to or any(
        name.lower() in _OWN_HEADERS for name, _ in headers
    ):
        return None
    return (email.from_email, email.subject, email.body, email.content_subtype,
            email.encoding, tuple(email.reply_to), tuple(email.alternatives), headers)  # fmt: skip
