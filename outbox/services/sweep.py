"""The scheduler's tick: the rows' next_attempt_at is the only schedule.

Beat runs sweep_outbox every SWEEP_INTERVAL. It enqueues due rows that have no task pending
(`enqueued_at` is null), marking them, so a backlog of due rows is enqueued once however many
ticks pass while its tasks wait in the broker. A row whose task was enqueued longer ago than
LOST_AFTER lost it (Redis restarted empty) and is enqueued again. Rows still `sending` after
their lease (the worker died) go back to the queue with their claim cleared, or fail after
MAX_ATTEMPTS.
"""

from django.utils import timezone

from .. import policy
from ..models import OutboundMessage
from .enqueue import enqueue_jobs

Status = OutboundMessage.Status


def sweep_outbox(now=None):
    """One tick at `now` (default: the current time). Returns counts, for the log:
    {"failed", "revived", "lost", "enqueued"}."""
    now = now or timezone.now()
    failed, revived = _revive_expired(now)
    lost = OutboundMessage.objects.filter(
        status=Status.QUEUED, enqueued_at__lt=now - policy.LOST_AFTER
    ).update(enqueued_at=None)
    due = OutboundMessage.objects.due(now).filter(enqueued_at__isnull=True)
    rows = due.order_by("next_attempt_at").values_list("pk", "account", "account_type")
    enqueued = enqueue_jobs(list(rows[: policy.SWEEP_LIMIT]))
    return {"failed": failed, "revived": revived, "lost": lost, "enqueued": len(enqueued)}


def _revive_expired(now):
    """Fail or requeue rows whose worker died. The stale claim token is cleared, so the dead
    claim can never finish the row later. Returns (failed, revived)."""
    expired = OutboundMessage.objects.lease_expired(now)
    failed = expired.filter(attempts__gte=policy.MAX_ATTEMPTS).update(
        status=Status.FAILED, lease_until=None, error_kind="temporary", claim_token="",
        last_error=f"Gave up after {policy.MAX_ATTEMPTS} attempts: the worker stopped while "
        "sending.",
    )  # fmt: skip
    revived = expired.update(
        status=Status.QUEUED, lease_until=None, claim_token="", next_attempt_at=now,
        enqueued_at=None,
    )  # fmt: skip
    return failed, revived
