"""Retry: a failed message goes back to the queue at once, keeping its history and its
Message-ID (the same idempotency key), with a fresh attempt limit.

The database's `next_attempt_at` is the only schedule: a retried row is due now and is
enqueued after the transaction commits, exactly as delivery enqueues a new message.
"""

import logging

from django.db import transaction
from django.utils import timezone

# INTERIM: the engine branch's enqueue and Message-ID functions replace these at merge.
from smtp_accounts.services.outbox import _enqueue_on_commit, message_as_email

from ..models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def message_id_of(message):
    """The Message-ID header delivery gives `message` (the same on every attempt)."""
    return message_as_email(message).extra_headers["Message-ID"]


def retry_message(message):
    """Queue one failed message again now. Returns True, or False when it is not failed
    (sent, queued or sending: nothing to do), and then refreshes `message` from the row."""
    with transaction.atomic():
        if not _requeue(OutboundMessage.objects.filter(pk=message.pk)):
            message.refresh_from_db(fields=["status"])
            return False
        message.refresh_from_db()
        _enqueue_on_commit(message)
    logger.info("Message %s queued again by Retry", message.pk)
    return True


def count_failed(account=None):
    """How many failed messages (of `account`, or of every account) Retry failed would queue."""
    return _failed(account).count()


def retry_failed(account=None):
    """Queue every failed message (of `account`, or all) again now. Returns how many."""
    with transaction.atomic():
        ids = list(_failed(account).select_for_update().values_list("pk", flat=True))
        count = _requeue(OutboundMessage.objects.filter(pk__in=ids))
        for message in OutboundMessage.objects.filter(pk__in=ids, status=Status.QUEUED):
            _enqueue_on_commit(message)
    logger.info("Retry failed queued %s messages (account %s)", count, getattr(account, "pk", None))
    return count


def _failed(account):
    failed = OutboundMessage.objects.filter(status=Status.FAILED)
    return failed.filter(account=account) if account else failed


def _requeue(messages):
    """Failed rows back to queued, due now, attempts afresh. Returns how many changed.
    Conditional on `failed`: a second click, or a concurrent one, queues nothing twice."""
    return messages.filter(status=Status.FAILED).update(
        status=Status.QUEUED, attempts=0, next_attempt_at=timezone.now(), lease_until=None,
        updated_at=timezone.now(),
    )  # fmt: skip
