"""The local dev inbox (debug only): an aiosmtpd server that keeps every message it receives.

`manage.py devserver` (run by `make run`) starts it on 127.0.0.1:SMTP_ACCOUNTS_DEV_INBOX_PORT;
messages land in a Maildir at SMTP_ACCOUNTS_DEV_INBOX_DIR, and the Dev inbox page reads them
back with `read_messages`. It accepts mail from anyone who can reach it and needs no login,
so it only ever listens on the loopback address.
"""

import mailbox
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from django.conf import settings

HOST = "127.0.0.1"
MAX_SHOWN = 50


@dataclass
class InboxMessage:
    """One received message, as the Dev inbox page shows it."""

    key: str
    received_at: datetime
    envelope_to: str
    from_header: str
    to_header: str
    subject: str
    text: str


def inbox_dir():
    """The Maildir the inbox writes to (settings.SMTP_ACCOUNTS_DEV_INBOX_DIR)."""
    return Path(settings.SMTP_ACCOUNTS_DEV_INBOX_DIR)


class _InboxController(Controller):
    """aiosmtpd's Controller on a socket bound beforehand: a taken port fails at once, where
    aiosmtpd alone would notice only after its 5-second start-up timeout."""

    def __init__(self, handler, sock):
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1])

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


def start_inbox(port=None, directory=None):
    """Start the inbox on 127.0.0.1 in a background thread; return its Controller.

    Call `.stop()` on it when done. Raises OSError when the port is taken.
    """
    directory = Path(directory or inbox_dir())
    directory.parent.mkdir(parents=True, exist_ok=True)  # Maildir() creates only the last level
    sock = socket.create_server((HOST, port or settings.SMTP_ACCOUNTS_DEV_INBOX_PORT))
    controller = _InboxController(Mailbox(directory), sock)
    controller.start()
    return controller


def is_listening(port=None):
    """True when something accepts connections on the inbox's port."""
    try:
        with socket.create_connection((HOST, port or settings.SMTP_ACCOUNTS_DEV_INBOX_PORT), 0.5):
            return True
    except OSError:
        return False


def read_messages(directory=None, limit=MAX_SHOWN):
    """The newest `limit` messages in the inbox, newest first ([] when it does not exist)."""
    directory = Path(directory or inbox_dir())
    if not (directory / "new").is_dir():
        return []
    box = mailbox.Maildir(directory, create=False)
    received = sorted(
        ((box.get_message(key).get_date(), key) for key in box.iterkeys()), reverse=True
    )
    return [_parse(key, when, box.get_bytes(key)) for when, key in received[:limit]]


def clear_inbox(directory=None):
    """Delete every message in the inbox."""
    directory = Path(directory or inbox_dir())
    if (directory / "new").is_dir():
        mailbox.Maildir(directory, create=False).clear()


def _parse(key, when, raw):
    message = message_from_bytes(raw, policy=policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    return InboxMessage(
        key=key,
        received_at=datetime.fromtimestamp(when, tz=UTC),
        # The Mailbox handler records the envelope recipients, which Bcc leaves out of To.
        envelope_to=message.get("X-RcptTo", ""),
        from_header=message.get("From", ""),
        to_header=message.get("To", ""),
        subject=message.get("Subject", "(no subject)"),
        text=body.get_content() if body is not None else "",
    )
