"""The Celery tasks, run inline: each loads by id, calls its service, decides on a retry.

test_worker.py runs the same tasks in a real worker process on Redis.
"""

import re

import pytest
from django.conf import settings
from django.utils import timezone

from crm.celery import app
from smtp_accounts import services, tasks
from smtp_accounts.models import OutboundMessage, TestEmail
from smtp_accounts.services import delivery, outbox

Status = OutboundMessage.Status


@pytest.fixture
def account(smtp_server, smtp_account_for):
    return smtp_account_for(smtp_server, verified_at=timezone.now())


def queue(account, count=1):
    return [
        services.enqueue_message(account, to=[f"reader{n}@example.com"], subject="News", body="Hi")
        for n in range(count)
    ]


def test_deliver_message_sends_the_message(account, smtp_server):
    [message] = queue(account)

    assert tasks.deliver_message.apply(args=[message.pk]).successful()

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert [m.rcpt_tos for m in smtp_server.messages] == [["reader0@example.com"]]


def test_deliver_message_retries_a_temporary_failure_after_its_backoff(
    account, smtp_server, caplog
):
    [message] = queue(account)
    smtp_server.fail("mail", "421 4.3.2 Service shutting down")

    # Inline, Celery runs a retry at once instead of after its countdown: the row says
    # it is not due yet, so that run sends nothing.
    tasks.deliver_message.apply(args=[message.pk])
    smtp_server.reset()
    tasks.deliver_message.apply(args=[message.pk])

    [countdown] = re.findall(r"retry: Retry in ([\d.]+)s", caplog.text)
    assert delivery.BACKOFF_BASE / 2 <= float(countdown) <= delivery.BACKOFF_BASE
    message.refresh_from_db()
    assert message.status == Status.QUEUED and "421 4.3.2" in message.last_error
    assert smtp_server.messages == []


def test_deliver_message_does_not_retry_a_permanent_failure(account, smtp_server):
    [message] = queue(account)
    smtp_server.reject_recipient("reader0@example.com", "550 5.1.1 No such user")

    assert tasks.deliver_message.apply(args=[message.pk]).successful()

    message.refresh_from_db()
    assert message.status == Status.FAILED and "550 5.1.1" in message.last_error


def test_deliver_batch_sends_a_long_campaign_in_batches(smtp_server, smtp_account_for):
    campaigns = smtp_account_for(smtp_server, account_type="campaigns", verified_at=timezone.now())
    queue(campaigns, count=outbox.BATCH_SIZE + 20)

    # A full batch enqueues the next one (inline here: it runs at once).
    assert tasks.deliver_batch.apply(args=[campaigns.pk]).successful()

    assert OutboundMessage.objects.filter(status=Status.SENT).count() == outbox.BATCH_SIZE + 20
    assert len(smtp_server.messages) == outbox.BATCH_SIZE + 20
    assert smtp_server.connections <= 2


def test_sweep_outbox_enqueues_lost_mail(account, smtp_server):
    [message] = queue(account)
    OutboundMessage.objects.filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - outbox.SWEEP_AFTER
    )

    assert tasks.sweep_outbox.apply().get() == {"failed": 0, "revived": 0, "enqueued": 1}
    assert len(smtp_server.messages) == 1


def test_the_beat_schedule_runs_the_sweeper_and_campaigns_have_their_own_queue():
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]
    assert sweep["task"] == tasks.sweep_outbox.name
    assert sweep["schedule"] <= outbox.SWEEP_AFTER.total_seconds()
    assert app.amqp.router.route({}, tasks.deliver_batch.name)["queue"].name == "campaigns"
    assert app.amqp.router.route({}, tasks.deliver_message.name)["queue"].name == "mail"
    # Declared, so a bare `celery -A crm worker` consumes both (test_worker.py runs one).
    assert {"mail", "campaigns"} <= set(app.amqp.queues)


def test_redis_keeps_a_waiting_retry_longer_than_the_longest_backoff_and_run():
    # Redis hands a task out again when it is not acknowledged within visibility_timeout,
    # and a retry waiting for its countdown is such a task: the longest wait (BACKOFF_CAP)
    # plus the longest run (the time limit, the outbox's LEASE) must fit, or the retry runs
    # twice. (deliver_batch's re-enqueue after a failure waits as long.)
    visibility_timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == visibility_timeout
    for task in (tasks.deliver_message, tasks.deliver_batch):
        assert task.time_limit == outbox.LEASE.total_seconds()
        assert visibility_timeout > delivery.BACKOFF_CAP + task.time_limit
    longest = max(delivery.retry_delay(attempts) for attempts in range(1, 2 * outbox.MAX_ATTEMPTS))
    assert longest <= delivery.BACKOFF_CAP


def test_send_test_email_mails_the_code(account, smtp_server):
    test = services.request_test_email(account, to="admin@example.com")

    assert tasks.send_test_email.apply(args=[test.pk]).successful()

    [received] = smtp_server.messages
    assert re.search(r"^Confirmation code: \d{6}\r?$", received.message.get_content(), re.M)
    assert TestEmail.objects.get(pk=test.pk).status == TestEmail.Status.SENT


def test_send_test_email_does_not_retry_a_failure(account, smtp_server):
    test = services.request_test_email(account, to="admin@example.com")
    smtp_server.fail("mail", "421 4.3.2 Service shutting down")

    result = tasks.send_test_email.apply(args=[test.pk])

    assert result.successful()  # no retry: the admin reads the reason in the pop-up
    test.refresh_from_db()
    assert test.status == TestEmail.Status.FAILED and "421 4.3.2" in test.error
    assert smtp_server.messages == []
