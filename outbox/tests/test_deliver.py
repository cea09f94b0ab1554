"""Delivery against a real aiosmtpd server: queue, claim, send, retry, history.

Tasks run inline here (no broker); test_worker.py runs them in a real worker.
"""

import socket
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import policy, services
from outbox.models import Attempt, OutboundMessage
from smtp_accounts.models import SmtpAccount

Status = OutboundMessage.Status


def send(account_type="system", **fields):
    values = {"to": ["ann@example.com"], "subject": "Invoice 42", "body": "Hello Ann"}
    return services.send_email(account_type=account_type, **{**values, **fields})


def test_a_message_delivered_twice_is_sent_once(ready, smtp_server):
    ready()
    message = send()

    services.deliver_message(message.pk)
    services.deliver_message(message.pk)  # e.g. a task Redis redelivered
    assert len(smtp_server.messages) == 1


def test_a_temporary_failure_queues_a_retry_with_backoff(ready, smtp_server):
    ready()
    message = send()
    smtp_server.fail("rcpt", "451 4.3.0 Try again later")

    before = timezone.now()
    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.QUEUED and message.attempts == 1
    assert message.error_kind == "temporary" and "451 4.3.0 Try again later" in message.last_error
    wait = (message.next_attempt_at - before).total_seconds()
    assert policy.BACKOFF_BASE / 2 <= wait <= policy.BACKOFF_BASE + 1
    assert message.enqueued_at is None  # no task waits for it: the scheduler's tick will
    # Not due yet: a stray delivery does not jump the backoff.
    services.deliver_message(message.pk)
    message.refresh_from_db()
    assert message.attempts == 1


def test_a_temporary_failure_fails_the_message_after_the_last_attempt(ready, smtp_server):
    ready()
    message = send()
    OutboundMessage.objects.filter(pk=message.pk).update(attempts=policy.MAX_ATTEMPTS - 1)
    smtp_server.fail("rcpt", "451 4.3.0 Try again later")

    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.last_error.startswith(f"Gave up after {policy.MAX_ATTEMPTS} attempts.")


def test_a_permanent_failure_fails_the_message_with_its_reason(ready, smtp_server):
    ready()
    message = send(to=["nobody@example.com"])
    smtp_server.reject_recipient("nobody@example.com", "550 5.1.1 No such user")

    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.FAILED and message.error_kind == "permanent"
    assert "550 5.1.1 No such user" in message.last_error


def test_a_configuration_error_fails_the_message_and_shows_on_the_account(ready, smtp_server):
    account = ready(password="not-the-password")
    message = send()

    services.deliver_message(message.pk)

    message.refresh_from_db()
    account.refresh_from_db()
    assert message.status == Status.FAILED and message.error_kind == "configuration"
    assert "rejected the login" in message.last_error
    assert account.last_error == message.last_error
    assert smtp_server.messages == []


def test_mail_of_a_deleted_account_fails_and_says_why(ready):
    account = ready()
    message = send()
    SmtpAccount.objects.filter(pk=account.pk).delete()

    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.last_error == "Its SMTP account was deleted before the message was sent."


def test_mail_of_an_account_deactivated_meanwhile_waits_for_it(ready, smtp_server):
    account = ready(name="Billing")
    message = send()
    SmtpAccount.objects.filter(pk=account.pk).update(is_active=False)

    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.QUEUED and message.next_attempt_at > timezone.now()
    assert message.last_error == "The account “Billing” is not active and verified; waiting for it."
    assert smtp_server.messages == []


def test_a_batch_claims_due_mail_of_one_account_and_sends_it_on_one_connection(ready, smtp_server):
    account, other = ready("campaigns"), ready("system")
    for number in range(policy.BATCH_SIZE + 5):
        send("campaigns", to=[f"reader{number}@example.com"])
    waiting = send("campaigns", to=["later@example.com"])
    OutboundMessage.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    send("system")

    batch = services.claim_batch(account.pk)
    assert len(batch) == policy.BATCH_SIZE and {m.account_id for m in batch} == {account.pk}
    assert len(services.claim_batch(account.pk)) == 5  # the rest; claimed rows stay claimed
    assert services.claim_batch(account.pk) == []
    assert services.deliver_claimed(batch) is False  # nothing put back

    assert smtp_server.connections == 1
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == [
        f"reader{number}@example.com" for number in range(policy.BATCH_SIZE)
    ]
    sent = OutboundMessage.objects.filter(account=account, status=Status.SENT)
    assert sent.count() == policy.BATCH_SIZE
    assert OutboundMessage.objects.get(account=other).status == Status.QUEUED


def test_a_batch_out_of_time_puts_its_unsent_mail_back_untried(ready, smtp_server, monkeypatch):
    account = ready("campaigns")
    for number in range(3):
        send("campaigns", to=[f"reader{number}@example.com"])
    monkeypatch.setattr(policy, "BATCH_TIME_BUDGET", 0)  # spent before the first message

    assert services.deliver_claimed(services.claim_batch(account.pk)) is True  # go on at once

    assert smtp_server.messages == []
    assert {(row.status, row.attempts) for row in OutboundMessage.objects.all()} == {
        (Status.QUEUED, 0)
    }
    assert len(services.claim_batch(account.pk)) == 3  # due again


def test_campaign_mail_is_sent_inline_without_a_broker(
    ready, smtp_server, django_capture_on_commit_callbacks
):
    ready("campaigns")
    with django_capture_on_commit_callbacks(execute=True):
        send("campaigns", to=["ann@example.com"])
        send("campaigns", to=["bob@example.com"])

    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "ann@example.com", "bob@example.com"]  # fmt: skip
    assert OutboundMessage.objects.filter(status=Status.SENT).count() == 2


def test_a_batch_that_cannot_connect_puts_every_message_off(ready, smtp_server, smtp_account_for):
    account = ready("campaigns")
    for number in range(3):
        send("campaigns", to=[f"reader{number}@example.com"])
    SmtpAccount.objects.filter(pk=account.pk).update(port=1)  # nothing listens there

    services.deliver_claimed(services.claim_batch(account.pk))

    rows = OutboundMessage.objects.all()
    assert {row.status for row in rows} == {Status.QUEUED}
    assert all("refused the connection" in row.last_error for row in rows)


def test_a_worker_keeps_the_connection_open_across_messages(ready, smtp_server):
    account = ready()
    messages = [send(to=[f"reader{number}@example.com"]) for number in range(3)]

    for message in messages:
        services.deliver_message(message.pk, reuse_connection=True)
    assert smtp_server.connections == 1 and len(smtp_server.messages) == 3

    account.from_name = "Billing"  # an edited account gets a fresh connection
    account.save()
    services.deliver_message(send().pk, reuse_connection=True)
    assert smtp_server.connections == 2


@pytest.fixture
def impatient_server(smtp_test_settings):
    """A plain SMTP server that hangs up on a client idle for 0.2 s, as real ones do later."""
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.rcpt_tos)
            return "250 OK"

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, timeout=0.2)
    controller.start()
    controller.received = received
    yield controller
    controller.stop()


def test_a_kept_connection_the_server_hung_up_on_is_replaced(impatient_server, make_account):
    make_account(
        password="", username="", security="none", host="127.0.0.1",
        port=impatient_server.port, verified_at=timezone.now(),
    )  # fmt: skip
    services.deliver_message(send().pk, reuse_connection=True)
    time.sleep(0.5)  # the server hangs up on the idle connection

    services.deliver_message(send(to=["bob@example.com"]).pk, reuse_connection=True)

    assert impatient_server.received == [["ann@example.com"], ["bob@example.com"]]
    assert OutboundMessage.objects.filter(status=Status.SENT).count() == 2


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_retry_delays_grow_exponentially_with_jitter_up_to_a_cap(attempts):
    ceiling = min(policy.BACKOFF_CAP, policy.BACKOFF_BASE * 2 ** (attempts - 1))

    delays = {services.retry_delay(attempts) for _ in range(50)}

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(delays) > 1


def test_every_try_is_in_the_history_with_the_servers_reply(ready, smtp_server):
    account = ready(name="Relay")
    message = send()
    smtp_server.fail("rcpt", "451 4.3.0 Try again later")
    services.deliver_message(message.pk)
    smtp_server.reset()
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    services.deliver_message(message.pk)

    first, second = Attempt.objects.filter(message=message)
    assert (first.outcome, first.code, first.account, first.account_name) == (
        "temporary", 451, account, "Relay")  # fmt: skip
    assert "451 4.3.0 Try again later" in first.reason
    assert first.recipients == [{"email": "ann@example.com", "outcome": "refused", "code": 451,
                                 "reason": "4.3.0 Try again later"}]  # fmt: skip
    assert (second.outcome, second.code) == ("sent", 250)
    assert second.recipients == [
        {"email": "ann@example.com", "outcome": "accepted", "code": None, "reason": ""}]


def test_a_recipient_refused_among_accepted_ones_is_on_record(ready, smtp_server):
    # Defect 7: the row said `sent` with no trace of the refusal, only a log line.
    ready()
    message = send(to=["ann@example.com", "ghost@example.com", "bob@example.com"])
    smtp_server.reject_recipient("ghost@example.com", "550 5.1.1 No such user here")

    services.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert "ghost@example.com (550 5.1.1 No such user here)" in message.last_error
    [attempt] = message.history.all()
    assert {(r["email"], r["outcome"], r["code"]) for r in attempt.recipients} == {
        ("ann@example.com", "accepted", None), ("bob@example.com", "accepted", None),
        ("ghost@example.com", "refused", 550),
    }  # fmt: skip
    assert smtp_server.messages[0].rcpt_tos == ["ann@example.com", "bob@example.com"]


def test_a_batch_writes_its_history_in_one_insert_per_group(ready, smtp_server, monkeypatch):
    monkeypatch.setattr(policy, "SAVE_SECONDS", 3600)  # groups by size only, however slow
    monkeypatch.setattr(policy, "SAVE_EVERY", 20)  # two groups in one batch
    account = ready("campaigns")
    for number in range(2 * policy.SAVE_EVERY):
        send("campaigns", to=[f"reader{number}@example.com"])
    batch = services.claim_batch(account.pk)

    with CaptureQueriesContext(connection) as queries:
        services.deliver_claimed(batch)

    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "outbox_attempt"')]
    assert len(inserts) == 2  # two groups of SAVE_EVERY
    assert Attempt.objects.filter(outcome="sent").count() == 2 * policy.SAVE_EVERY
    updates = [q for q in queries if q["sql"].startswith('UPDATE "smtp_accounts_outboundmessage"')]
    assert len(updates) == 2  # the sent rows: one UPDATE per group too


def test_a_temporary_failure_on_a_kept_connection_does_not_reconnect(ready, smtp_server):
    # Defect 4: any temporary failure (a 451 for one recipient) on a kept connection dropped
    # it, reconnected and re-sent the message at once.
    ready()
    services.deliver_message(send().pk, reuse_connection=True)
    smtp_server.reject_recipient("bob@example.com", "451 4.2.1 Mailbox busy")

    services.deliver_message(send(to=["bob@example.com"]).pk, reuse_connection=True)
    services.deliver_message(send(to=["carol@example.com"]).pk, reuse_connection=True)

    assert smtp_server.connections == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.com"],
                                                          ["carol@example.com"]]  # fmt: skip
    assert OutboundMessage.objects.get(to=["bob@example.com"]).attempts == 1


def test_mailguns_403_is_a_configuration_error_shown_on_the_account(
    mailgun_server, mailgun_account_for
):
    # Defect 8: a 403 (the key may not send for this domain) failed the message as if the
    # message were at fault; like 401, it is the account's configuration.
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    message = services.enqueue_message(account, to=["ann@example.com"], subject="News", body="Hi")
    mailgun_server.fail(403)

    services.deliver_message(message.pk)

    message.refresh_from_db()
    account.refresh_from_db()
    assert (message.status, message.error_kind) == (Status.FAILED, "configuration")
    assert "Mailgun refused to send for mg.example.com with this API key (403" in message.last_error
    assert account.last_error == message.last_error
    assert [(a.outcome, a.code) for a in message.history.all()] == [("configuration", 403)]
