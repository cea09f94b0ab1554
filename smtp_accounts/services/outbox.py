"""The outbox: mail is a row first, then a Celery task delivers it. Nothing is lost silently.

`send_email` writes an OutboundMessage in the caller's transaction and enqueues its delivery
when that transaction commits (a rolled-back transaction sends nothing). A worker claims the
row with a conditional update (queued -> sending, leased), sends it through the account's
Sender and records sent, failed, or queued again for a retry with backoff. Delivery is at
least once: a task delivered twice finds the row no longer queued and does nothing.
`sweep_outbox` (celery beat) re-enqueues rows whose enqueue was lost or whose worker died.

Campaign mail goes in batches: a worker claims up to BATCH_SIZE due rows of one account and
sends them on one connection (DESIGN.md "Volume"); other mail goes one message per task.
Delivery itself is in services/delivery.py, the kept connections in services/connections.py.
"""

import hashlib
import logging
import uuid
from datetime import timedelta
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone
from kombu.exceptions import OperationalError

from ..models import AccountType, OutboundMessage, SmtpAccount

__all__ = [
    "BATCH_SIZE",
    "LEASE",
    "MAX_ATTEMPTS",
    "NoReadyAccount",
    "enqueue_batch",
    "enqueue_message",
    "message_as_email",
    "ready_account",
    "send_email",
    "sending_account_ids",
    "sweep_outbox",
]

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status

BATCH_SIZE = 100
# How long a worker owns a claimed row: longer than a batch may take (BATCH_TIME_BUDGET plus
# one slow message), so the sweeper never gives a row to a second worker while the first is
# still sending it. The delivery tasks' hard time limit is the same.
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 10
SWEEP_AFTER = timedelta(minutes=2)  # a queued row due this long ago has lost its task
SWEEP_LIMIT = 1000


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
    account = _ready_accounts().filter(account_type=account_type).order_by("pk").first()
    if account is None:
        raise NoReadyAccount(account_type)
    return account


def sending_account_ids():
    """Ids of the accounts that send each type's mail now: the one ready_account picks."""
    first = _ready_accounts().values("account_type").annotate(first=Min("pk"))
    return set(first.values_list("first", flat=True))


def _ready_accounts():
    return SmtpAccount.objects.filter(is_active=True, verified_at__isnull=False)


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
    if "\x00" in message.subject + message.body_text + message.body_html:
        raise ValueError("Remove NUL characters from the subject and body.")
    if len(message.subject) > 998 or len(message.idempotency_key) > 100:
        raise ValueError("The subject (998) or the idempotency key (100) is too long.")
    message_as_email(message).message()  # raises BadHeaderError (a ValueError) for line breaks
