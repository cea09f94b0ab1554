"""The outbox: mail is a row first, then a Celery task delivers it. Nothing is lost silently.

`send_email` writes an OutboundMessage in the caller's transaction and enqueues its delivery
when that transaction commits (a rolled-back transaction sends nothing). A worker claims the
row with a conditional update (queued -> sending, leased), sends it through the account's
Sender and records sent, failed, or queued again for a retry with backoff. Delivery is at
least once: a task delivered twice finds the row no longer queued and does nothing.
`sweep_outbox` (celery beat) re-enqueues rows whose enqueue was lost or whose worker died.

Campaign mail goes in batches: a worker claims up to BATCH_SIZE due rows of one account and
sends them on one connection (DESIGN.md "Volume"); other mail goes one message per task.
"""

import hashlib
import logging
import random
import threading
import time
import uuid
from datetime import timedelta
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from ..crypto import UndecryptableSecret
from ..models import AccountType, OutboundMessage, SmtpAccount
from ..senders import (
    ConfigurationError,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    get_sender,
)

__all__ = [
    "BATCH_SIZE",
    "LEASE",
    "MAX_ATTEMPTS",
    "NoReadyAccount",
    "claim_batch",
    "close_connections",
    "deliver_claimed",
    "deliver_message",
    "enqueue_batch",
    "enqueue_message",
    "message_as_email",
    "ready_account",
    "retry_delay",
    "send_email",
    "sweep_outbox",
]

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status

BATCH_SIZE = 100
# How long a worker owns a claimed row: longer than a batch may take (BATCH_TIME_BUDGET plus
# one slow message), so the sweeper never gives a row to a second worker while the first is
# still sending it. The delivery tasks' hard time limit is the same.
LEASE = timedelta(minutes=5)
BATCH_TIME_BUDGET = 60  # seconds; a slower batch puts its unsent rows back in the queue
MAX_ATTEMPTS = 10
BACKOFF_BASE = 30  # seconds before the first retry, doubling per attempt ...
BACKOFF_CAP = 60 * 60  # ... up to this. Keep it below the broker's visibility_timeout.
SWEEP_AFTER = timedelta(minutes=2)  # a queued row due this long ago has lost its task
SWEEP_LIMIT = 1000
IDLE_SECONDS = 30  # a kept connection unused this long is closed
# Sent rows are saved in groups (one commit per group, not per message). A worker killed
# mid-batch re-sends at most the rows it had claimed and not saved yet.
SAVE_EVERY = 20


class NoReadyAccount(LookupError):
    """No active and verified account can send this mail."""

    def __init__(self, account_type, account=None):
        if account is None:
            kind = AccountType(account_type).label.removesuffix(" Account")
            reason = f"There is no active and verified {kind} account"
        else:
            reason = f"The account “{account.name}” is not active and verified"
        super().__init__(
            f"{reason}, so the email was not sent. Add one under System Settings > SMTP "
            f"Accounts, or test and confirm an existing one."
        )
        self.account_type = account_type


def ready_account(account_type):
    """The account that sends mail of `account_type`: the oldest active and verified one.

    Raises ValueError for an unknown type, NoReadyAccount when no account of it is ready.
    """
    if account_type not in AccountType.values:
        raise ValueError(
            f"Unknown account type {account_type!r}; use one of {', '.join(AccountType.values)}."
        )
    ready = SmtpAccount.objects.filter(
        account_type=account_type, is_active=True, verified_at__isnull=False
    )
    account = ready.order_by("pk").first()
    if account is None:
        raise NoReadyAccount(account_type)
    return account


def send_email(*, account_type, to, subject, body, html_body=None, from_email=None,
               cc=(), bcc=(), reply_to=(), headers=None, idempotency_key=None):  # fmt: skip
    """Queue an email through the ready account of `account_type` (see enqueue_message).

    Returns the OutboundMessage. Raises ValueError for an unknown type or a malformed
    message, NoReadyAccount when no account of that type is active and verified.
    """
    return enqueue_message(
        ready_account(account_type), to=to, subject=subject, body=body, html_body=html_body,
        from_email=from_email, cc=cc, bcc=bcc, reply_to=reply_to, headers=headers,
        idempotency_key=idempotency_key,
    )  # fmt: skip


def enqueue_message(account, *, to, subject, body, html_body=None, from_email=None,
                    cc=(), bcc=(), reply_to=(), headers=None, idempotency_key=None):  # fmt: skip
    """Write a queued OutboundMessage for `account`; its delivery is enqueued on commit.

    `from_email` defaults to the account's From. A reused `idempotency_key` returns the
    earlier message and queues nothing. Raises NoReadyAccount when the account is not
    active and verified, ValueError for a message that cannot be sent (no recipient, a bad
    address, a line break in a header …).
    """
    if not account.is_ready:
        raise NoReadyAccount(account.account_type, account)
    if idempotency_key and (earlier := _by_key(idempotency_key)):
        return earlier
    message = OutboundMessage(
        account=account, account_type=account.account_type,
        from_email=from_email or account.from_address, to=_addresses(to), cc=_addresses(cc),
        bcc=_addresses(bcc), reply_to=_addresses(reply_to), subject=subject, body_text=body,
        body_html=html_body or "", headers=dict(headers or {}),
        idempotency_key=idempotency_key or uuid.uuid4().hex,
    )  # fmt: skip
    _check_sendable(message)
    try:
        with transaction.atomic():  # a savepoint: a duplicate key keeps the caller's transaction
            message.save()
    except IntegrityError:
        if idempotency_key and (earlier := _by_key(idempotency_key)):
            return earlier
        raise
    _enqueue_on_commit(message)
    return message


def message_as_email(message):
    """The Django EmailMessage for an OutboundMessage row.

    Its Message-ID comes from the idempotency key: a message sent twice (delivery is at
    least once) carries the same Message-ID both times, so receivers can tell.
    """
    domain = message.from_email.rpartition("@")[2].strip(" >") or "localhost"
    digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
    email = EmailMultiAlternatives(
        subject=message.subject, body=message.body_text, from_email=message.from_email,
        to=message.to, cc=message.cc, bcc=message.bcc, reply_to=message.reply_to,
        headers={"Message-ID": f"<{digest}@{domain}>", **message.headers},
    )  # fmt: skip
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    return email


def sweep_outbox(*, overdue=SWEEP_AFTER):
    """Re-enqueue mail that fell through the cracks. Returns counts, for the log.

    Rows still `sending` after their lease (the worker died) go back to the queue, or fail
    after MAX_ATTEMPTS. Queued rows due for longer than `overdue` lost their task (the
    broker was down at enqueue time, or restarted empty) and are enqueued again. Celery beat
    runs it; `overdue=timedelta(0)` sweeps everything that is due now.
    """
    now = timezone.now()
    expired = OutboundMessage.objects.lease_expired(now)
    failed = expired.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Status.FAILED, lease_until=None, error_kind="temporary",
        last_error=f"Gave up after {MAX_ATTEMPTS} attempts: the worker stopped while sending.",
    )  # fmt: skip
    # Back to the queue, and overdue at once: enqueued again just below.
    revived = expired.update(status=Status.QUEUED, lease_until=None, next_attempt_at=now - overdue)
    lost = OutboundMessage.objects.due(now - overdue)
    rows = lost.order_by("next_attempt_at").values_list("pk", "account", "account_type")
    jobs = {}  # (task, argument) -> its rows: one task per row, or per account for campaigns
    for row in rows[:SWEEP_LIMIT]:
        jobs.setdefault(_delivery(*row), []).append(row[0])
    enqueued = [pk for (task, arg), pks in jobs.items() if _enqueue(task, arg) for pk in pks]
    # Not enqueued again before `overdue` has passed once more.
    lost.filter(pk__in=enqueued).update(next_attempt_at=now)
    return {"failed": failed, "revived": revived, "enqueued": len(enqueued)}


def enqueue_batch(account_id, *, countdown=None):
    """Enqueue the batch sender of one account (campaign queue), now or in `countdown` s.

    Returns False when the broker cannot be reached; the sweeper enqueues the rows later.
    """
    return _enqueue(_tasks().deliver_batch, account_id, countdown)


def _tasks():
    # Imported here: tasks import services, so a module-level import would be circular.
    from .. import tasks

    return tasks


def _delivery(message_id, account_id, account_type):
    """(task, argument) that delivers a row: campaign mail in batches when workers run.

    Inline (no broker) there is no worker to share batches with: one task per message.
    """
    tasks = _tasks()
    inline = tasks.deliver_message.app.conf.task_always_eager
    if account_id and account_type == AccountType.CAMPAIGNS and not inline:
        return tasks.deliver_batch, account_id
    return tasks.deliver_message, message_id


def _enqueue(task, arg, countdown=None):
    """Put a task on the queue. Returns False when the broker cannot be reached: the row
    stays queued and the sweeper enqueues it again later."""
    try:
        task.apply_async((arg,), countdown=countdown)
    except OperationalError as err:
        logger.warning("Could not enqueue %s(%s), the sweeper will: %s", task.name, arg, err)
        return False
    return True


class _EnqueueOnCommit:
    """An on-commit callback; equal callbacks (one account's batch) are registered once."""

    def __init__(self, task, arg):
        self.task, self.arg = task, arg

    def __eq__(self, other):
        return isinstance(other, _EnqueueOnCommit) and (self.task.name, self.arg) == (
            other.task.name, other.arg)  # fmt: skip

    __hash__ = None

    def __call__(self):
        _enqueue(self.task, self.arg)


def _enqueue_on_commit(message):
    task, arg = _delivery(message.pk, message.account_id, message.account_type)
    callback = _EnqueueOnCommit(task, arg)
    if task is _tasks().deliver_batch:
        # A campaign queues many rows in one transaction: one batch task per account starts
        # them all. Django keeps this transaction's pending callbacks in run_on_commit.
        pending = transaction.get_connection().run_on_commit
        if any(entry[1] == callback for entry in reversed(pending)):
            return
    transaction.on_commit(callback)


def _by_key(idempotency_key):
    return OutboundMessage.objects.filter(idempotency_key=idempotency_key).first()


def _addresses(value):
    values = [value] if isinstance(value, str) else list(value or ())
    return [address.strip() for address in values if address and address.strip()]


def _check_sendable(message):
    """Raise ValueError now for what would make delivery fail for sure later."""
    if not (message.to or message.cc or message.bcc):
        raise ValueError("The email has no recipient: give at least one address in to, cc or bcc.")
    for address in [*message.to, *message.cc, *message.bcc, *message.reply_to, message.from_email]:
        try:
            validate_email(parseaddr(address)[1])
        except ValidationError:
            raise ValueError(f"{address!r} is not a valid email address.") from None
    if len(message.subject) > 998 or len(message.idempotency_key) > 100:
        raise ValueError("The subject (998) or the idempotency key (100) is too long.")
    message_as_email(message).message()  # raises BadHeaderError (a ValueError) for line breaks


# --- Delivery: claim, send, record -----------------------------------------------------------


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


class CannotOpen(Exception):
    """The connection could not be opened: the remaining messages cannot go either."""

    def __init__(self, error):
        super().__init__(error.reason)
        self.error = error


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


# --- Kept connections: one open Sender per account and worker process ----------------------


def close_connections():
    """Close every connection this process keeps open (at worker shutdown)."""
    _idle.close_idle(idle_for=0)


class KeptConnection:
    """The account's Sender for one task, opened on first use.

    With keep=True it comes from, and goes back to, this process's idle connections: a
    worker sends message after message without reconnecting. A kept connection that fails
    is replaced by a fresh one, once (the server may have hung up on it while idle).
    """

    def __init__(self, account, *, keep):
        self.account, self.keep = account, keep
        self.sender, self.untried = None, False  # untried: kept, not used since it idled

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.sender is not None and self.keep:
            _idle.put(self.account, self.sender)
        elif self.sender is not None:
            self.sender.close()
        return False

    def send(self, email):
        """Send `email`; returns the provider's id. Raises CannotOpen, SendError or
        ConfigurationError."""
        if self.sender is None:
            self._open(reuse=True)
        try:
            provider_id = self.sender.send(email)
        except TemporaryFailure:
            if not self.untried:
                raise  # the sender reconnects by itself for the next message
            # The server may have hung up on the kept connection while it idled: once,
            # try again on a fresh one.
            self.discard()
            self._open(reuse=False)
            provider_id = self.sender.send(email)
        self.untried = False
        return provider_id

    def discard(self):
        if self.sender is not None:
            self.sender.close()
        self.sender, self.untried = None, False

    def _open(self, *, reuse):
        self.sender = _idle.take(self.account) if self.keep and reuse else None
        self.untried = self.sender is not None
        if self.sender is None:
            sender = get_sender(self.account)
            try:
                sender.open()
            except (SendError, ConfigurationError) as err:
                raise CannotOpen(err) from err
            except UndecryptableSecret as err:
                raise CannotOpen(ConfigurationError(str(err))) from err
            self.sender = sender


class _IdleSenders:
    """Open senders kept between tasks: one per account, closed when unused for IDLE_SECONDS
    (a timer thread checks) or when the account's settings changed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._senders = {}  # account pk -> (settings key, sender, monotonic time it came back)
        self._timer = None

    def take(self, account):
        with self._lock:
            key, sender, _ = self._senders.pop(account.pk, (None, None, None))
        if sender is not None and key != _settings_key(account):
            sender.close()
            return None
        return sender

    def put(self, account, sender):
        with self._lock:
            previous = self._senders.pop(account.pk, None)
            self._senders[account.pk] = (_settings_key(account), sender, time.monotonic())
            self._schedule()
        if previous is not None:
            previous[1].close()

    def close_idle(self, idle_for=IDLE_SECONDS):
        with self._lock:
            self._timer = None
            cutoff = time.monotonic() - idle_for
            idle = [pk for pk, (_, _, since) in self._senders.items() if since <= cutoff]
            closing = [self._senders.pop(pk)[1] for pk in idle]
            self._schedule()
        for sender in closing:
            sender.close()

    def _schedule(self):
        if self._senders and self._timer is None:
            self._timer = threading.Timer(IDLE_SECONDS / 2, self.close_idle)
            self._timer.daemon = True
            self._timer.start()


_idle = _IdleSenders()


def _settings_key(account):
    fields = ("provider", "host", "port", "username", "security", "domain", "updated_at")
    return tuple(getattr(account, name) for name in fields)
