"""The outbox's Celery tasks, run inline: each loads by id and calls its service.

test_worker.py runs the same tasks in a real worker process on Redis.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from crm.celery import app
from outbox import policy, services, tasks
from outbox.models import OutboundMessage

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


def test_a_temporary_failure_waits_in_the_database_not_in_the_broker(account, smtp_server):
    [message] = queue(account)
    smtp_server.fail("mail", "421 4.3.2 Service shutting down")

    result = tasks.deliver_message.apply(args=[message.pk])

    assert result.successful() and result.state == "SUCCESS"  # no Celery retry, no countdown
    message.refresh_from_db()
    assert message.status == Status.QUEUED and "421 4.3.2" in message.last_error
    assert message.enqueued_at is None and message.next_attempt_at > timezone.now()


def test_deliver_message_does_not_retry_a_permanent_failure(account, smtp_server):
    [message] = queue(account)
    smtp_server.reject_recipient("reader0@example.com", "550 5.1.1 No such user")

    assert tasks.deliver_message.apply(args=[message.pk]).successful()

    message.refresh_from_db()
    assert message.status == Status.FAILED and "550 5.1.1" in message.last_error


def test_deliver_batch_sends_a_long_campaign_in_batches(smtp_server, smtp_account_for):
    campaigns = smtp_account_for(smtp_server, account_type="campaigns", verified_at=timezone.now())
    queue(campaigns, count=policy.BATCH_SIZE + 20)

    # A full batch enqueues the next one (inline here: it runs at once).
    assert tasks.deliver_batch.apply(args=[campaigns.pk]).successful()

    assert OutboundMessage.objects.filter(status=Status.SENT).count() == policy.BATCH_SIZE + 20
    assert len(smtp_server.messages) == policy.BATCH_SIZE + 20
    assert smtp_server.connections <= 2


def test_sweep_outbox_enqueues_due_mail_without_a_task(account, smtp_server):
    [message] = queue(account)
    OutboundMessage.objects.filter(pk=message.pk).update(enqueued_at=None)

    assert tasks.sweep_outbox.apply().get() == {
        "failed": 0, "revived": 0, "lost": 0, "enqueued": 1}  # fmt: skip
    assert len(smtp_server.messages) == 1


def test_prune_messages_keeps_the_retention_period(account, settings):
    settings.SMTP_ACCOUNTS_LOG_RETENTION_DAYS = 30
    old, recent = queue(account, count=2)
    OutboundMessage.objects.update(status=Status.SENT)
    OutboundMessage.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))

    assert tasks.prune_messages.apply().get() == 1
    assert list(OutboundMessage.objects.values_list("pk", flat=True)) == [recent.pk]


def test_the_beat_schedule_runs_the_tick_and_the_pruning_and_campaigns_have_their_own_queue():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["sweep-outbox"]["task"] == tasks.sweep_outbox.name
    assert schedule["sweep-outbox"]["schedule"] == policy.SWEEP_INTERVAL <= 30
    assert schedule["prune-outbox"]["task"] == tasks.prune_messages.name
    assert app.amqp.router.route({}, tasks.deliver_batch.name)["queue"].name == "campaigns"
    assert app.amqp.router.route({}, tasks.deliver_message.name)["queue"].name == "mail"
    # Declared, so a bare `celery -A crm worker` consumes both (test_worker.py runs one).
    assert {"mail", "campaigns"} <= set(app.amqp.queues)


def test_a_task_is_given_up_for_lost_only_after_redis_would_have_redelivered_it():
    # Redis hands an unacknowledged task out again after visibility_timeout; a task younger
    # than that may still run, so the tick must not enqueue its row a second time.
    visibility_timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert policy.LOST_AFTER.total_seconds() >= visibility_timeout
    for task in (tasks.deliver_message, tasks.deliver_batch):
        assert task.time_limit == policy.LEASE.total_seconds() < visibility_timeout


def test_beats_bounce_poll_reads_every_mailbox(bounce_relay, smtp_server, imap_server,
                                               make_account, settings):  # fmt: skip
    make_account(name="No mailbox")
    [message] = queue(bounce_relay)
    services.deliver_message(message.pk)
    received = smtp_server.messages[-1].message["Message-ID"]
    original = "<c3a97e1f02b4@crm.example.com>"  # the Message-ID inside the sample
    imap_server.deliver("postfix_user_unknown.eml", **{original: received})
    schedule = settings.CELERY_BEAT_SCHEDULE["poll-bounce-mailboxes"]
    assert schedule["task"] == "outbox.tasks.poll_bounce_mailboxes"
    assert schedule["schedule"] == settings.SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS

    tasks.poll_bounce_mailboxes.delay()  # no broker: the tasks run here

    message.refresh_from_db()
    assert message.status == Status.FAILED and imap_server.unseen() == []


def test_fetch_bounces_survives_an_unreadable_mailbox(bounce_relay, settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = []  # netguard refuses 127.0.0.1 now

    assert tasks.fetch_bounces.delay(bounce_relay.pk).get() == 0

    bounce_relay.refresh_from_db()
    assert "loopback" in bounce_relay.bounce_error
