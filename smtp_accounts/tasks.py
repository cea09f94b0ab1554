"""Celery tasks: ids in, a service call, a retry decision. The logic lives in services.

Arguments are ids only, never a password, a code or a message body: the broker and the
worker's log see nothing else. Delivery tasks acknowledge late and are re-queued when their
worker dies, so a task is never lost; the outbox claim makes a second run send nothing twice.
"""

from celery import shared_task
from celery.signals import worker_process_shutdown

from . import audit, services

# A task running longer than the row lease could overlap the sweeper's retry of its rows.
_TIME_LIMIT = services.LEASE.total_seconds()
_DELIVERY = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": _TIME_LIMIT}


@shared_task(bind=True, max_retries=None, **_DELIVERY)
def deliver_message(self, message_id):
    """Send one queued message; after a temporary failure, retry when its backoff is over."""
    retry_in = services.deliver_message(message_id, reuse_connection=not self.request.is_eager)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(bind=True, **_DELIVERY)
def deliver_batch(self, account_id):
    """Send the next batch of an account's due mail on one connection (campaign queue)."""
    batch = services.claim_batch(account_id)
    if len(batch) == services.BATCH_SIZE:
        services.enqueue_batch(account_id)  # more is waiting: a free worker starts on it now
    retry_in = services.deliver_claimed(batch, reuse_connection=not self.request.is_eager)
    if retry_in is not None:
        services.enqueue_batch(account_id, countdown=retry_in)


@shared_task
def sweep_outbox():
    """Re-enqueue mail whose enqueue was lost or whose worker died (celery beat runs it)."""
    return services.sweep_outbox()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_test_email(test_email_id):
    """Send a test email. No automatic retry: the admin is waiting in the pop-up, and the
    failure reason is stored on the TestEmail for them to read. Its audit entries name
    `system`, also when it runs in-process (no broker) inside an admin's request."""
    with audit.acting_as(audit.SYSTEM):
        services.deliver_test_email(test_email_id)


@worker_process_shutdown.connect
def _close_kept_connections(**kwargs):
    services.close_connections()
