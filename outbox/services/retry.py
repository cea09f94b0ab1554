"""Retry: a failed message goes back to the queue at once, keeping its history and its
Message-ID (the same idempotency key), with a fresh attempt limit.

The database's `next_attempt_at` is the only schedule: a retried row is due now, has no task
pending (`enqueued_at` cleared), and is enqueued after the transaction commits through the
scheduler's own enqueue_jobs (one task per message, one batch per account for campaigns).
Without a broker that sends it in the request, as a new message is.
"""

import logging

from django.db import transaction
from django.utils import timezone

from .. import policy
from ..models import OutboundMessage
from .enqueue import enqueue_jobs, message_as_email

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def message_id_of(message):
    """The Message-ID header `message` went out with (the same on every attempt): read from
    the very EmailMessage delivery builds, so the two cannot disagree; for mail sent through
    Mailgun, the id Mailgun gave it (a batch call's recipients share Mailgun's one id, which
    is their Message-ID: the call sets none of its own)."""
    if message.provider_message_id and message.account and message.account.is_external:
        return message.provider_message_id
    return message_as_email(message).extra_headers["Message-ID"]


def retry_message(message):
    """Queue one failed message again now. Returns True, or False when it is not failed
    (sent, queued or sending: nothing to do), and then refreshes `message` from the row."""
    if not _requeue([message.pk]):
        message.refresh_from_db(fields=["status"])
        return False
    message.refresh_from_db()
    logger.info("Message %s queued again by Retry", message.pk)
    return True


def count_failed(account=None):
    """How many failed messages (of `account`, or of every account) Retry failed would queue."""
    return _failed(account).count()


def retry_failed(account=None):
    """Queue every failed message (of `account`, or all) again now. Returns how many."""
    count = _requeue(list(_failed(account).values_list("pk", flat=True)))
    logger.info("Retry failed queued %s messages (account %s)", count, getattr(account, "pk", None))
    return count


def _failed(account):
    failed = OutboundMessage.objects.filter(status=Status.FAILED)
    return failed.filter(account=account) if account else failed


def _requeue(ids):
    """Failed rows among `ids` back to queued: due now, attempts afresh, no task pending;
    their delivery is enqueued when the transaction commits. Returns how many changed.
    Conditional on `failed`, so a second or concurrent click queues nothing twice."""
    with transaction.atomic():
        now = timezone.now()
        failed = OutboundMessage.objects.filter(pk__in=ids, status=Status.FAILED)
        rows = list(failed.select_for_update().values_list("pk", "account", "account_type"))
        OutboundMessage.objects.filter(pk__in=[row[0] for row in rows]).update(
            status=Status.QUEUED, attempts=0, next_attempt_at=now, enqueued_at=None,
            lease_until=None, claim_token="", updated_at=now,
        )  # fmt: skip
        # As many as one scheduler tick takes; the tick enqueues the rest (due, no task).
        transaction.on_commit(lambda: enqueue_jobs(rows[: policy.SWEEP_LIMIT]))
    return len(rows)
