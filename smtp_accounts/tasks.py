"""Celery tasks of the settings module: ids in, a service call. The logic lives in services.

Test emails do not go through the outbox (the code is made by the task that sends it, and
an admin waits for it): outbox/tasks.py holds the delivery tasks.
"""

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def send_test_email(test_email_id):
    """Send a test email. No automatic retry: the admin is waiting in the pop-up, and the
    failure reason is stored on the TestEmail for them to read."""
    services.deliver_test_email(test_email_id)
