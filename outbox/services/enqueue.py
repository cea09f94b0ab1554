"""Writing mail: a row first, then a Celery task delivers it. Nothing is lost silently.

`send_email` writes an OutboundMessage in the caller's transaction and enqueues its delivery
when that transaction commits (a rolled-back transaction sends nothing). The row records
that a task is pending (`enqueued_at`), so the scheduler's tick (sweep.py) never enqueues
it twice. Campaign mail is delivered in batches of one account, other mail one message per
task (DESIGN.md "Volume"); deliver.py sends, claim.py claims.
"""

import hashlib
import logging
import uuid
from email.utils import parseaddr

from celery import current_app
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from smtp_accounts.models import AccountType
from smtp_accounts.senders import placeholders
from smtp_accounts.services.accounts import NoReadyAccount, ready_account

from ..models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
_http_url = URLValidator(schemes=["http", "https"])


def send_email(*, account_type, to, subject, body, html_body=None, from_email=None,
               cc=(), bcc=(), reply_to=(), headers=None, idempotency_key=None,
               merge_data=None, unsubscribe_url=None):  # fmt: skip
    """Queue an email through the ready account of `account_type` (see enqueue_message).

    Returns the OutboundMessage. Raises ValueError for an unknown type or a malformed
    message, NoReadyAccount when no account of that type is active and verified.
    """
    return enqueue_message(
        ready_account(account_type), to=to, subject=subject, body=body, html_body=html_body,
        from_email=from_email, cc=cc, bcc=bcc, reply_to=reply_to, headers=headers,
        idempotency_key=idempotency_key, merge_data=merge_data, unsubscribe_url=unsubscribe_url,
    )  # fmt: skip


def enqueue_message(account, *, to, subject, body, html_body=None, from_email=None,
                    cc=(), bcc=(), reply_to=(), headers=None, idempotency_key=None,
                    merge_data=None, unsubscribe_url=None):  # fmt: skip
    """Write a queued OutboundMessage for `account`; its delivery is enqueued on commit.

    `from_email` defaults to the account's From. A reused `idempotency_key` returns the
    earlier message and queues nothing. `merge_data` {name: value} fills this recipient's
    `%recipient.NAME%` placeholders (smtp_accounts/senders/placeholders.py);
    `unsubscribe_url` adds RFC 8058 one-click unsubscribe headers. Raises NoReadyAccount
    when the account is not active and verified, ValueError for a message that cannot be
    sent (no recipient, a bad address, a line break in a header, a bad merge_data name or
    unsubscribe URL …).
    """
    if not account.is_ready:
        raise NoReadyAccount(account.account_type, account)
    if idempotency_key and (earlier := _by_key(idempotency_key)):
        return earlier
    message = OutboundMessage(
        account=account, account_type=account.account_type,
        from_email=from_email or account.from_address, to=_addresses(to), cc=_addresses(cc),
        bcc=_addresses(bcc), reply_to=_addresses(reply_to), subject=subject, body_text=body,
        body_html=html_body or "", headers=with_unsubscribe(headers, unsubscribe_url),
        merge_data=placeholders.clean_values(merge_data),
        idempotency_key=idempotency_key or uuid.uuid4().hex, enqueued_at=timezone.now(),
    )  # fmt: skip
    check_sendable(message)
    try:
        with transaction.atomic():  # a savepoint: a duplicate key keeps the caller's transaction
            message.save()
    except IntegrityError:
        if idempotency_key and (earlier := _by_key(idempotency_key)):
            return earlier
        raise
    enqueue_on_commit(message)
    return message


def with_unsubscribe(headers, unsubscribe_url):
    """`headers` (a dict or None) plus RFC 8058's one-click unsubscribe headers for
    `unsubscribe_url`, which Gmail and Yahoo require of bulk senders. Raises ValueError
    for a URL that is not http(s)."""
    headers = dict(headers or {})
    if unsubscribe_url is None:
        return headers
    try:
        _http_url(unsubscribe_url)
    except ValidationError:
        raise ValueError("unsubscribe_url must be an http:// or https:// URL.") from None
    headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def message_as_email(message, *, personalize=True):
    """The Django EmailMessage for an OutboundMessage row, its placeholders filled with its
    merge_data (`personalize=False`: left as written, for a provider that fills them).

    Its Message-ID comes from the idempotency key: a message sent twice (delivery is at
    least once) carries the same Message-ID both times, so receivers can tell.
    """
    values = message.merge_data if personalize else None

    def filled(text, html=False):
        return text if values is None else placeholders.fill(text, values, html=html)

    email = EmailMultiAlternatives(
        subject=filled(message.subject), body=filled(message.body_text),
        from_email=message.from_email, to=message.to, cc=message.cc, bcc=message.bcc,
        reply_to=message.reply_to,
        headers={"Message-ID": message_id_header(message), **message.headers},
    )  # fmt: skip
    if message.body_html:
        email.attach_alternative(filled(message.body_html, html=True), "text/html")
    return email


def message_id_header(message):
    """The Message-ID header of a row: the same on every try (see message_as_email)."""
    domain = message.from_email.rpartition("@")[2].strip(" >") or "localhost"
    digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def enqueue_jobs(rows):
    """Enqueue the delivery of queued rows, given as (id, account id, account type) tuples:
    one task per row, or one batch task per account for campaign mail.

    Marks the rows enqueued first (a task run inline may reschedule its row, and that must
    stand) and unmarks those whose task the broker refused, so the next tick takes them.
    Returns the ids enqueued.
    """
    jobs = {}  # (task name, argument) -> its row ids
    for row in rows:
        jobs.setdefault(_delivery(*row), []).append(row[0])
    now = timezone.now()
    pks = [pk for ids in jobs.values() for pk in ids]
    OutboundMessage.objects.filter(pk__in=pks, status=Status.QUEUED).update(enqueued_at=now)
    refused = [pk for (name, arg), ids in jobs.items() if not _enqueue(name, arg) for pk in ids]
    OutboundMessage.objects.filter(pk__in=refused, enqueued_at=now).update(enqueued_at=None)
    return [pk for pk in pks if pk not in set(refused)]


def wake_at(rows, moment):
    """Enqueue the delivery of queued rows, given as in enqueue_jobs, for `moment` (a Celery
    eta), without marking them enqueued: a wake-up at a window's opening, sooner than the
    scheduler's next tick. The tick stays the guarantee (it enqueues them too if it comes
    first: the claim makes the second task find nothing), so a lost wake-up loses nothing.
    Inline (no broker) there is no later: the tick of the next request takes them."""
    if is_inline():
        return
    for name, arg in {_delivery(*row) for row in rows}:
        try:
            _task(name).apply_async((arg,), eta=moment)
        except OperationalError as err:
            logger.warning("Could not enqueue %s(%s) for later: %s", name, arg, err)


def enqueue_batch(account_id):
    """Enqueue the batch sender of one account (campaign queue) now.

    Returns False when the broker cannot be reached; the scheduler enqueues the rows later.
    """
    return _enqueue("deliver_batch", account_id)


def is_inline():
    """True when tasks run in-process (no CELERY_BROKER_URL): mail goes out in the request."""
    return current_app.conf.task_always_eager


def _task(name):
    # By name from the app's registry (outbox.apps imports the tasks module): tasks call
    # services, so services importing tasks would be a cycle.
    return current_app.tasks[f"outbox.tasks.{name}"]


def _delivery(message_id, account_id, account_type):
    """(task name, argument) that delivers a row: campaign mail in batches of its account,
    with or without a broker (inline, the batch task runs once on commit and takes every
    row the transaction queued, so a campaign leaves in as few Mailgun calls as it can)."""
    if account_id and account_type == AccountType.CAMPAIGNS:
        return "deliver_batch", account_id
    return "deliver_message", message_id


def _enqueue(name, arg):
    """Put a task on the queue. Returns False when the broker cannot be reached."""
    try:
        _task(name).apply_async((arg,))
    except OperationalError as err:
        logger.warning("Could not enqueue %s(%s), the scheduler will: %s", name, arg, err)
        return False
    return True


class _EnqueueOnCommit:
    """An on-commit callback; equal callbacks (one account's batch) are registered once."""

    def __init__(self, name, arg, message_id):
        self.name, self.arg, self.message_id = name, arg, message_id

    def __eq__(self, other):
        return isinstance(other, _EnqueueOnCommit) and (self.name, self.arg) == (
            other.name, other.arg)  # fmt: skip

    __hash__ = None

    def __call__(self):
        if not _enqueue(self.name, self.arg):
            # No task is pending: the scheduler's next tick enqueues the row(s).
            rows = OutboundMessage.objects.filter(status=Status.QUEUED, enqueued_at__isnull=False)
            if self.name == "deliver_batch":
                rows.filter(account_id=self.arg).update(enqueued_at=None)
            else:
                rows.filter(pk=self.message_id).update(enqueued_at=None)


def enqueue_on_commit(message):
    """Enqueue the delivery of the new row `message` when the transaction commits: its own
    task, or its account's batch task, registered once per transaction."""
    name, arg = _delivery(message.pk, message.account_id, message.account_type)
    callback = _EnqueueOnCommit(name, arg, message.pk)
    if name == "deliver_batch" and _already_pending(callback):
        return  # a campaign queues many rows in one transaction: one batch task starts them
    transaction.on_commit(callback)


def _already_pending(callback):
    # Django keeps this transaction's pending callbacks in run_on_commit; there is no public
    # way to ask. test_enqueue.py fails if that attribute changes shape.
    pending = transaction.get_connection().run_on_commit
    return any(entry[1] == callback for entry in reversed(pending))


def _by_key(idempotency_key):
    return OutboundMessage.objects.filter(idempotency_key=idempotency_key).first()


def _addresses(value):
    values = [value] if isinstance(value, str) else list(value or ())
    return [address.strip() for address in values if address and address.strip()]


def check_sendable(message):
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
