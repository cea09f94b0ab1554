"""The scheduler's tick: due rows are enqueued once, lost tasks and dead workers recovered.

Inline here (no broker) an enqueued task runs at once; the storm test enqueues to Redis.
"""

import json
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from outbox import policy, services
from outbox.models import OutboundMessage
from outbox.services import claim, sweep

Status = OutboundMessage.Status


def send(account_type="system", **fields):
    values = {"to": ["ann@example.com"], "subject": "Invoice 42", "body": "Hello Ann"}
    return services.send_email(account_type=account_type, **{**values, **fields})


def without_task(message, **fields):
    """As if its task never reached the broker (or it failed and waits for its retry)."""
    OutboundMessage.objects.filter(pk=message.pk).update(enqueued_at=None, **fields)


def test_the_tick_sends_due_mail_that_has_no_task(ready, smtp_server):
    ready()
    orphan, pending = send(), send(to=["bob@example.com"])
    without_task(orphan)

    assert services.sweep_outbox()["enqueued"] == 1

    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.com"]]
    pending.refresh_from_db()
    assert pending.status == Status.QUEUED  # its own task is still on the way


def test_a_task_enqueued_long_ago_is_given_up_for_lost(ready, smtp_server):
    ready()
    message = send()
    recent = timezone.now() - policy.LOST_AFTER + timedelta(minutes=1)
    OutboundMessage.objects.filter(pk=message.pk).update(enqueued_at=recent)
    assert services.sweep_outbox()["enqueued"] == 0  # its task may wait behind a backlog

    OutboundMessage.objects.filter(pk=message.pk).update(
        enqueued_at=timezone.now() - policy.LOST_AFTER - timedelta(seconds=1)
    )
    assert services.sweep_outbox() == {"failed": 0, "revived": 0, "lost": 1, "enqueued": 1}
    assert len(smtp_server.messages) == 1


def test_the_tick_resends_mail_of_a_worker_that_died(ready, smtp_server):
    ready()
    message = send()
    assert claim.claim_message(message.pk)  # the worker then died
    assert services.sweep_outbox()["revived"] == 0  # its lease still runs

    OutboundMessage.objects.filter(pk=message.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    result = services.sweep_outbox()

    assert result["revived"] == 1 and result["enqueued"] == 1
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    assert len(smtp_server.messages) == 1


def test_a_dead_claim_cannot_finish_a_row_it_lost(ready, smtp_server):
    # Defect 5: the sweeper requeued a row but kept its claim token, and mark_sent ignored
    # the token, so the first worker, back from the dead, could overwrite the row.
    ready()
    message = send()
    stale = claim.claim_message(message.pk)
    OutboundMessage.objects.filter(pk=message.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    services.sweep_outbox()  # requeued; inline, its new task sends it at once
    message.refresh_from_db()
    assert message.status == Status.SENT and message.claim_token != stale.claim_token

    assert claim.mark_sent(stale.claim_token, {message.pk: "<late@example.com>"}) == 0
    assert claim.finish(stale, status=Status.FAILED, last_error="late") == 0
    message.refresh_from_db()
    assert message.status == Status.SENT and message.provider_message_id != "<late@example.com>"


def test_a_requeued_row_keeps_no_claim(ready):
    ready()
    message = send()
    stale = claim.claim_message(message.pk)
    now = timezone.now() + policy.LEASE + timedelta(seconds=1)  # the lease has run out

    assert sweep._revive_expired(now) == (0, 1)  # the tick's first step, before it enqueues

    message.refresh_from_db()
    assert (message.status, message.claim_token) == (Status.QUEUED, "")
    assert claim.finish(stale, status=Status.FAILED) == 0


def test_the_tick_gives_up_on_mail_that_keeps_stopping_its_worker(ready):
    ready()
    message = send()
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, attempts=policy.MAX_ATTEMPTS,
        lease_until=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip

    assert services.sweep_outbox()["failed"] == 1

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert "the worker stopped while sending" in message.last_error


def test_retries_of_a_failed_batch_each_go_when_they_are_due(ready, smtp_server):
    # Defect 1: after a failed batch, one task was re-enqueued at the smallest of the rows'
    # delays; rows due later waited for the sweeper, minutes late. Now each tick enqueues
    # whatever has come due.
    account = ready("campaigns")
    rows = [send("campaigns", to=[f"reader{n}@example.com"]) for n in range(3)]
    smtp_server.fail("rcpt", "451 4.3.0 Try again later")
    services.deliver_claimed(services.claim_batch(account.pk))
    smtp_server.reset()
    due = sorted(OutboundMessage.objects.values_list("next_attempt_at", flat=True))
    assert len(set(due)) == 3 and due[0] > timezone.now()  # jittered: three different times

    sent_by_tick = []
    for index in range(3):
        when = due[index]
        # Time passes until `when`: every queued row's due time moves back by as much.
        passed = when - timezone.now() + timedelta(milliseconds=1)
        queued = OutboundMessage.objects.filter(status=Status.QUEUED)
        queued.update(next_attempt_at=F("next_attempt_at") - passed)
        due = [moment - passed for moment in due]
        services.sweep_outbox()
        sent_by_tick.append(len(smtp_server.messages))

    assert sent_by_tick == [1, 2, 3]  # inline, the tick's batch task runs at once
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {Status.SENT}
    assert len(rows) == 3


@pytest.mark.worker
def test_a_backlog_is_enqueued_once_however_many_ticks_pass(
    ready, celery_broker, django_capture_on_commit_callbacks
):
    # The duplicate-task storm: the old sweeper enqueued every row due for 2 minutes again
    # at each sweep while its task waited in the broker.
    system, campaigns = ready("system"), ready("campaigns")
    backlog = [send("system", to=[f"s{n}@example.com"]) for n in range(30)]
    backlog += [send("campaigns", to=[f"c{n}@example.com"]) for n in range(30)]
    OutboundMessage.objects.update(enqueued_at=None)  # e.g. queued while Redis was down

    for minute in range(5):
        services.sweep_outbox(now=timezone.now() + timedelta(minutes=minute))

    tasks = [json.loads(raw)["headers"] for raw in celery_broker.queued("mail", "campaigns")]
    by_task = sorted((t["task"], t["argsrepr"]) for t in tasks)
    assert by_task.count(("outbox.tasks.deliver_batch", f"({campaigns.pk},)")) == 1
    single = [args for task, args in by_task if task == "outbox.tasks.deliver_message"]
    assert sorted(single) == sorted(f"({m.pk},)" for m in backlog[:30])
    assert system.pk and not OutboundMessage.objects.filter(enqueued_at__isnull=True).exists()
