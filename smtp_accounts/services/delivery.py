"""Delivery: claim queued outbox rows, send them on one connection, record each outcome.

A claim is a conditional update (queued -> sending, leased), so a task delivered twice finds
nothing left to send. A temporary failure queues the row again with backoff and jitter, a
permanent one fails it with its reason, a configuration problem is also kept on the account.
"""

import logging
import random
import time
from datetime import timedelta

from django.utils import timezone

from ..models import OutboundMessage
from ..senders import ConfigurationError, PermanentFailure, SendError, TemporaryFailure
from .connections import CannotOpen, KeptConnection
from .outbox import BATCH_SIZE, LEASE, MAX_ATTEMPTS, message_as_email

__all__ = ["claim_batch", "deliver_claimed", "deliver_message", "retry_delay"]

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status

BATCH_TIME_BUDGET = 60  # seconds; a slower batch puts its unsent rows back in the queue
BACKOFF_BASE = 30  # seconds before the first retry, doubling per attempt ...
BACKOFF_CAP = 60 * 60  # ... up to this. Keep it below the broker's visibility_timeout.
# Sent rows are saved in groups (one commit per group, not per message). A worker killed
# mid-batch re-sends at most the rows it had claimed and not saved yet.
SAVE_EVERY = 20


def deliver_message(message_id, *, reuse_connection=False):
    """Claim one queued message, send it and record the outcome.

    Returns the seconds until its retry is due after a temporary failure, else None. Does
    nothing (None) when the message is not queued and due: already sent, being sent by
    another worker, failed, or waiting for its retry; so a task delivered twice sends once.
    `reuse_connection`: take, and keep, this process's open connection of the account.
    """
    message = OutboundMessage.objects.claim(message_id, LEASE)
    if message is None:
        return None
    return deliver_claimed([message], reuse_connection=reuse_connection)


def claim_batch(account_id):
    """Claim up to BATCH_SIZE due messages of one account. Returns them, oldest first."""
    return OutboundMessage.objects.claim_batch(account_id, BATCH_SIZE, LEASE)


def deliver_claimed(messages, *, reuse_connection=False):
    """Send claimed messages of one account on one connection and record each outcome.

    Returns the seconds until the earliest retry is due (0 when some were put back unsent),
    or None. Send errors never escape: each ends up on its row, and a configuration problem
    also on the account.
    """
    if not messages:
        return None
    account = messages[0].account
    recorder = _Recorder(account)
    if account is None:
        reason = "Its SMTP account was deleted before the message was sent."
        recorder.fail_all(messages, PermanentFailure(reason))
    elif not account.is_ready:
        reason = f"The account “{account.name}” is not active and verified; waiting for it."
        recorder.fail_all(messages, TemporaryFailure(reason))
    else:
        with KeptConnection(account, keep=reuse_connection) as connection:
            _send_each(connection, messages, recorder)
    recorder.save()
    logger.info("Account %s: %s", getattr(account, "pk", None), recorder.summary())
    return recorder.retry_in


def retry_delay(attempts):
    """Seconds to wait before the next try, after `attempts` tries.

    Exponential from BACKOFF_BASE, capped at BACKOFF_CAP, with "equal jitter" (half fixed,
    half random) so messages that failed together do not all come back at the same moment.
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _send_each(connection, messages, recorder):
    """Send `messages` in order, recording each outcome. Stops early when the rest cannot go
    (the account is misconfigured, the server unreachable) or the time budget is spent."""
    deadline = time.monotonic() + BATCH_TIME_BUDGET
    for position, message in enumerate(messages):
        if time.monotonic() > deadline:
            recorder.put_back(messages[position:])
            return
        try:
            recorder.sent(message, connection.send(message_as_email(message)))
        except (CannotOpen, ConfigurationError) as err:
            connection.discard()
            recorder.fail_all(messages[position:], getattr(err, "error", err))
            return
        except SendError as err:
            recorder.fail(message, err)
        except Exception:
            logger.exception("Unexpected error while sending outbox message %s", message.pk)
            connection.discard()
            reason = "An unexpected error stopped the send; the worker log has the details."
            recorder.fail(message, TemporaryFailure(reason))


class _Recorder:
    """Writes each claimed message's outcome: sent rows in groups of SAVE_EVERY, the rest
    at once (a failure is rare, and must not be lost)."""

    def __init__(self, account):
        self.account, self.retry_in = account, None
        self.counts = {"sent": 0, "retry": 0, "failed": 0, "put back": 0}
        self._sent, self._saved_at = {}, time.monotonic()

    def sent(self, message, provider_id):
        self._sent[message.pk] = (provider_id or "")[:255]
        self.counts["sent"] += 1
        if len(self._sent) >= SAVE_EVERY or time.monotonic() - self._saved_at > 1:
            self.save()

    def save(self):
        if self._sent:
            OutboundMessage.objects.mark_sent(self._sent)
        self._sent, self._saved_at = {}, time.monotonic()

    def fail(self, message, error):
        """A temporary error queues a retry (until MAX_ATTEMPTS); any other fails the row."""
        reason, kind = error.reason, error.kind or "permanent"
        retry = kind == "temporary" and message.attempts < MAX_ATTEMPTS
        if retry:
            delay = retry_delay(message.attempts)
            due = timezone.now() + timedelta(seconds=delay)
            change = {"status": Status.QUEUED, "next_attempt_at": due}
            self.retry_in = delay if self.retry_in is None else min(self.retry_in, delay)
        else:
            change = {"status": Status.FAILED}
            if kind == "temporary":
                reason = f"Gave up after {message.attempts} attempts. {reason}"
        OutboundMessage.objects.finish(message, last_error=reason, error_kind=kind, **change)
        self.counts["retry" if retry else "failed"] += 1
        logger.warning("Outbox message %s %s: %s", message.pk,
                       "will be retried" if retry else "failed", reason)  # fmt: skip

    def fail_all(self, messages, error):
        if getattr(error, "kind", "") == "configuration" and self.account is not None:
            self.account.record_error(error.reason)
        for message in messages:
            self.fail(message, error)

    def put_back(self, messages):
        """Unsent rows go back to the queue as if never tried; a new task takes them."""
        OutboundMessage.objects.put_back(messages)
        self.counts["put back"] += len(messages)
        self.retry_in = 0

    def summary(self):
        return ", ".join(f"{count} {what}" for what, count in self.counts.items() if count)
