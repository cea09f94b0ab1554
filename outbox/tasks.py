"""Celery tasks of the outbox: ids in, a service call. The logic lives in services.

Arguments are ids only, never a password or a message body: the broker and the worker's log
see nothing else. Delivery tasks acknowledge late and are re-queued when their worker dies,
so a task is never lost; the claim makes a second run send nothing twice. No task retries
itself: a retry is a row's `next_attempt_at`, and the scheduler's tick enqueues it when due.
"""

from celery import shared_task
from celery.signals import worker_process_shutdown

from . import policy, services

# A task running longer than the row lease could overlap the sweeper's retry of its rows.
_DELIVERY = {"acks_late": True, "reject_on_worker_lost": True,
             "time_limit": policy.LEASE.total_seconds()}  # fmt: skip


@shared_task(**_DELIVERY)
def deliver_message(message_id):
    """Send one queued message (a temporary failure reschedules its row)."""
    services.deliver_message(message_id, reuse_connection=not deliver_message.request.is_eager)


@shared_task(**_DELIVERY)
def deliver_batch(account_id):
    """Send the next batch of an account's due mail on one connection (campaign queue)."""
    services.deliver_batches(account_id, worker=not deliver_batch.request.is_eager)


@shared_task
def sweep_outbox():
    """The scheduler's tick (celery beat): enqueue due mail, revive rows of dead workers."""
    return services.sweep_outbox()


@shared_task
def prune_messages():
    """Delete sent and failed mail older than SMTP_ACCOUNTS_LOG_RETENTION_DAYS (daily)."""
    return services.prune_messages(older_than=policy.retention())


@worker_process_shutdown.connect
def _close_kept_connections(**kwargs):
    services.close_connections()
