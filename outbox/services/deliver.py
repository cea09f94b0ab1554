"""Delivery: send claimed outbox rows on one connection and record each outcome.

A temporary failure queues the row again for its next_attempt_at (the scheduler's tick
enqueues it when due: no task waits in the broker for a countdown); a permanent one fails it
with its reason; a configuration problem is also kept on the account. Every try leaves an
Attempt in the message's history; sent rows and their attempts are saved in groups.
"""

import logging
import random
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from smtp_accounts.senders import (
    ConfigurationError,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    Throttled,
)

from .. import policy
from ..models import OutboundMessage
from . import batch_calls, claim, events, history, render, routing, suppressions
from .connections import CannotOpen
from .enqueue import enqueue_batch

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def deliver_message(message_id, *, reuse_connection=False):
    """Claim one queued message, send it and record the outcome. Returns nothing.

    Does nothing when the message is not queued and due: already sent, being sent by
    another worker, failed, or waiting for its retry; so a task delivered twice sends once.
    `reuse_connection`: take, and keep, this process's open connection of the account.
    """
    message = claim.claim_message(message_id)
    if message is not None:
        deliver_claimed([message], reuse_connection=reuse_connection)


def deliver_batches(account_id, *, worker):
    """Claim and send the account's next batch of due mail. Returns nothing.

    With a worker (a broker runs) one batch: a full one first enqueues the next, so a free
    worker starts on it, and rows put back unsent are enqueued again. Inline (no broker),
    batch after batch until none is left: no other worker shares them, and a task that
    enqueued itself would recurse.
    """
    size = claim.batch_size(account_id)
    while True:
        batch = claim.claim_batch(account_id, size)
        full = len(batch) == size
        if full and worker:
            enqueue_batch(account_id)
        put_back = deliver_claimed(batch, reuse_connection=worker)
        if worker and put_back:
            enqueue_batch(account_id)
        if worker or not (full or put_back):
            return


def deliver_claimed(messages, *, reuse_connection=False):
    """Send claimed messages of one account on one connection and record each outcome.

    Returns True when some were put back unsent (the time budget ran out: enqueue their
    account's batch again), else False. Suppressed recipients are dropped first (one query
    for the batch; a message left with none fails). Send errors never escape: each ends up
    on its row and in its history, and a configuration problem also on the account.
    """
    messages = suppressions.screen(messages)  # suppressed recipients never reach a server
    if not messages:
        return False
    account = messages[0].account
    recorder = _Recorder(account)
    if account is None:
        reason = "Its SMTP account was deleted before the message was sent."
        recorder.fail_all(messages, PermanentFailure(reason))
    elif not account.is_ready:
        reason = f"The account “{account.name}” is not active and verified; waiting for it."
        recorder.fail_all(messages, TemporaryFailure(reason))
    elif admitted := routing.admit(account, messages):  # the rest went on or wait queued
        with routing.connection(account, admitted, keep=reuse_connection) as connection:
            if connection is not None:  # else every allowed connection is open elsewhere
                _send(connection, admitted, recorder)
    recorder.save()
    logger.info("Account %s: %s", getattr(account, "pk", None), recorder.summary())
    return recorder.counts["put back"] > 0


def retry_delay(attempts):
    """Seconds to wait before the next try, after `attempts` tries.

    Exponential from BACKOFF_BASE, capped at BACKOFF_CAP, with "equal jitter" (half fixed,
    half random) so messages that failed together do not all come back at the same moment.
    """
    ceiling = min(policy.BACKOFF_CAP, policy.BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _send(connection, messages, recorder):
    """Mailgun batch calls where the account makes them, else one message at a time."""
    if batch_calls.can_batch(connection.account):
        batch_calls.send_batches(connection, messages, recorder, _send_each)
    else:
        _send_each(connection, messages, recorder)


def _send_each(connection, messages, recorder):
    """Send `messages` in order, recording each outcome. Stops early when the rest cannot go
    (the account is misconfigured, the server unreachable) or the time budget is spent."""
    deadline = time.monotonic() + policy.BATCH_TIME_BUDGET
    account = messages[0].account
    reserved = len(messages) if not account.limits else 0  # sends taken under the limits
    renderer = render.Renderer(account)  # a campaign's MIME is built once (render.py)
    for position, message in enumerate(messages):
        if time.monotonic() > deadline:
            recorder.put_back(messages[position:])
            return
        if position == reserved:
            reserved += routing.take(account, messages[position:])
            if position == reserved:  # at a limit: the rest went on or wait
                recorder.counts["handed over"] += len(messages) - position
                return
        try:
            recorder.sent(message, connection.send(renderer.render(message)))
        except (CannotOpen, ConfigurationError, Throttled) as err:
            connection.discard()
            recorder.cannot_send(messages[position:], getattr(err, "error", err))
            return
        except SendError as err:
            recorder.fail(message, err)
        except Exception:
            logger.exception("Unexpected error while sending outbox message %s", message.pk)
            connection.discard()
            reason = "An unexpected error stopped the send; the worker log has the details."
            recorder.fail(message, TemporaryFailure(reason))


class _Recorder:
    """Writes each claimed message's outcome and history: sent rows in groups of SAVE_EVERY
    (one UPDATE and one INSERT of attempts per group), the rest at once (a failure is rare,
    and must not be lost)."""

    def __init__(self, account):
        self.account = account
        self.counts = {"sent": 0, "retry": 0, "failed": 0, "put back": 0, "handed over": 0}
        self._token, self._saved_at = "", time.monotonic()
        self._sent, self._notes, self._attempts = {}, {}, []

    def sent(self, message, delivery):
        self._note_sent(message, delivery)
        if len(self._sent) >= policy.SAVE_EVERY or (
            time.monotonic() - self._saved_at > policy.SAVE_SECONDS
        ):
            self.save()

    def sent_together(self, messages, deliveries):
        """Rows that left in one call (a batch): saved as one group, however many."""
        self.save()
        for message, delivery in zip(messages, deliveries, strict=True):
            self._note_sent(message, delivery)
        self.save()

    def _note_sent(self, message, delivery):
        self._token = message.claim_token
        self._sent[message.pk] = (delivery.provider_id or "")[:255]
        self._attempts.append(history.sent_attempt(message, delivery))
        if delivery.refused:
            self._notes[message.pk] = history.refusal_note(delivery.refused)
        self.counts["sent"] += 1

    def save(self):
        if self._sent:
            with transaction.atomic():  # one commit per group
                claim.mark_sent(self._token, self._sent, self._notes)
                history.record_attempts(self._attempts)
            if self.account is not None and self.account.is_external:
                # A webhook may have beaten this save: apply what waited for these rows.
                events.apply_pending_events(self._sent.values())
        self._sent, self._notes, self._attempts = {}, {}, []
        self._saved_at = time.monotonic()

    def fail(self, message, error):
        """A temporary error queues a retry (until MAX_ATTEMPTS); any other fails the row."""
        reason, kind = error.reason, error.kind or "permanent"
        retry = kind == "temporary" and message.attempts < policy.MAX_ATTEMPTS
        if retry:
            due = timezone.now() + timedelta(seconds=retry_delay(message.attempts))
            # No task is pending for it now: the scheduler's tick enqueues it when due.
            change = {"status": Status.QUEUED, "next_attempt_at": due, "enqueued_at": None,
                      "claim_token": ""}  # fmt: skip
        else:
            change = {"status": Status.FAILED}
            if kind == "temporary":
                reason = f"Gave up after {message.attempts} attempts. {reason}"
        with transaction.atomic():
            if claim.finish(message, last_error=reason, error_kind=kind, **change):
                history.failed_attempt(message, error).save()
        self.counts["retry" if retry else "failed"] += 1
        logger.warning("Outbox message %s %s: %s", message.pk,
                       "will be retried" if retry else "failed", reason)  # fmt: skip

    def cannot_send(self, messages, error):
        """The account cannot take `messages` now: throttled (paused, they go on or wait),
        or unreachable or misconfigured before the server accepted anything (they go to the
        next account of the route, else they fail or retry as before)."""
        self.save()  # what was sent before stays recorded first
        if isinstance(error, Throttled):
            return self._throttled(messages, error)
        taker = routing.successor(self.account)
        if taker is None:
            return self.fail_all(messages, error)
        if getattr(error, "kind", "") == "configuration":
            self.account.record_error(error.reason)
        history.failed_attempt(messages[0], error).save()  # the history shows both accounts
        routing.move(messages, taker, f"“{self.account.name}” could not take it: {error.reason}")
        self.counts["handed over"] += len(messages)

    def _throttled(self, messages, error):
        routing.record_throttled(messages[0], error)
        until = routing.pause_for_throttling(self.account, error)
        note = (f"“{self.account.name}” is paused until {timezone.localtime(until):%H:%M}: "
                f"{error.reason}")  # fmt: skip
        if not error.before_data:
            # The server may have the message: it waits for this account, same Message-ID.
            claim.finish(messages[0], status=Status.QUEUED, next_attempt_at=until,
                         enqueued_at=None, claim_token="", attempts=messages[0].attempts - 1,
                         last_error=note)  # fmt: skip
            messages = messages[1:]
        if messages:
            routing.hand_over(messages, self.account, note)
        self.counts["handed over"] += len(messages)

    def fail_all(self, messages, error):
        if getattr(error, "kind", "") == "configuration" and self.account is not None:
            self.account.record_error(error.reason)
        for message in messages:
            self.fail(message, error)

    def put_back(self, messages):
        """Unsent rows go back to the queue as if never tried; a new task takes them."""
        claim.put_back(messages)
        self.counts["put back"] += len(messages)

    def summary(self):
        return ", ".join(f"{count} {what}" for what, count in self.counts.items() if count)
