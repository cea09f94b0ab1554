"""Celery tasks of the outbox: ids in, a service call. The logic lives in services.

Arguments are ids only, never a password or a message body: the broker and the worker's log
see nothing else. Delivery tasks acknowledge late and are re-queued when their worker dies,
so a task is never lost; the claim makes a second run send nothing twice. No task retries
itself: a retry is a row's `next_attempt_at`, and the scheduler's tick enqueues it when due.
"""

import logging

from celery import shared_task
from celery.signals import worker_process_shutdown

from smtp_accounts.bounces import BounceMailboxError

from . import policy, services

logger = logging.getLogger(__name__)

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


@shared_task
def poll_bounce_mailboxes():
    """Beat's bounce poll: one fetch_bounces task per account with a bounce mailbox, so a
    slow mailbox holds up no other."""
    for account_id in services.accounts_with_mailbox().values_list("pk", flat=True):
        fetch_bounces.delay(account_id)


@shared_task
def fetch_bounces(account_id):
    """Read one account's bounce mailbox and apply its bounces. An unreadable mailbox is
    kept on the account (its last read's error), not retried here: the next poll tries."""
    account = services.accounts_with_mailbox().filter(pk=account_id).first()
    if account is None:
        return 0  # deleted, or its mailbox removed, since the poll
    try:
        return len(services.fetch_bounces(account))
    except BounceMailboxError as err:  # kept on the account; the next poll tries again
        logger.warning("Bounce mailbox of account %s not read: %s", account_id, err.reason)
        return 0


@worker_process_shutdown.connect
def _close_kept_connections(**kwargs):
    services.close_connections()
