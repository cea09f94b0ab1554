"""An overall deadline for a conversation with a mail server.

SMTP_ACCOUNTS_TIMEOUT bounds each read, but a tarpit that trickles its greeting a byte every
few seconds never lets one read time out. A SocketGuard bounds the whole of a connection
attempt (connect, greeting, EHLO, TLS, login) or of one send: when its deadline passes, a
watchdog thread shuts the socket down, the blocked read returns, and the caller raises
DeadlineExceeded. One watchdog thread serves every guard of the process.
"""

import os
import socket
import threading
import time

from django.conf import settings

TIMEOUTS_PER_DEADLINE = 3  # a conversation may take this many SMTP_ACCOUNTS_TIMEOUTs
WATCH_INTERVAL = 0.1  # seconds between the watchdog's looks: the deadline's precision


def conversation_deadline():
    """Seconds a connection attempt, or one send, may take in all."""
    return TIMEOUTS_PER_DEADLINE * float(settings.SMTP_ACCOUNTS_TIMEOUT)


class DeadlineExceeded(TimeoutError):
    """The server did not finish in time, although it kept sending something."""

    def __init__(self, seconds):
        super().__init__(f"no answer within the overall limit of {seconds:g} s")
        self.seconds = seconds


class SocketGuard:
    """Shuts a connection's socket down when an armed deadline passes.

    watch(sock) before the first read; arm() / disarm() around each conversation; `fired`
    says whether the last armed deadline cut it off; close() with the connection.
    """

    def __init__(self, seconds=None):
        self.seconds = conversation_deadline() if seconds is None else seconds
        self.fired, self._expires, self._sock = False, None, None

    def watch(self, sock):
        # A duplicate of the descriptor: shutdown() reaches the connection even after
        # smtplib has wrapped the socket in TLS (a new socket object on the same connection).
        self.close()
        self._sock = sock.dup()

    def arm(self):
        self.fired, self._expires = False, time.monotonic() + self.seconds
        _watchdog.add(self)

    def disarm(self):
        self._expires = None

    def close(self):
        self.disarm()
        _watchdog.discard(self)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def expired(self, now):
        return self._expires is not None and now >= self._expires

    def fire(self):
        self.fired, self._expires = True, None
        try:
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class _Watchdog:
    """One daemon thread that fires expired guards; it starts with the first guard."""

    def __init__(self):
        self._guards, self._lock, self._pid = set(), threading.Lock(), None

    def add(self, guard):
        with self._lock:
            self._guards.add(guard)
            if self._pid != os.getpid():  # none yet, or this is a forked worker process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="smtp-deadline", daemon=True).start()

    def discard(self, guard):
        with self._lock:
            self._guards.discard(guard)

    def _run(self):
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._lock:
                due = [guard for guard in self._guards if guard.expired(now)]
            for guard in due:
                guard.fire()


_watchdog = _Watchdog()
