"""Delivery through a real `celery -A crm worker` process on Redis, with its failures.

The worker shares the test database, so these tests are transactional: it sees only
committed rows. Skipped without Redis, except in CI.
"""

import asyncio
import base64
import json
import re
import socket
import threading
from collections import Counter
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import transaction
from django.utils import timezone

from outbox import policy, services, tasks
from outbox.models import OutboundMessage
from smtp_accounts import services as account_services
from smtp_accounts.models import SmtpAccount, TestEmail
from smtp_accounts.tests.fixtures.oauth_server import sign_in
from smtp_accounts.tests.fixtures.worker import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
Status = OutboundMessage.Status


def all_sent(count):
    return lambda: OutboundMessage.objects.filter(status=Status.SENT).count() == count


def status(message):
    return OutboundMessage.objects.values_list("status", flat=True).get(pk=message.pk)


def send(account_type, count=1, body="Hello", **fields):
    with transaction.atomic():  # delivery is enqueued when this commits
        return [
            services.send_email(
                account_type=account_type,
                to=[f"reader{n}@example.com"],
                subject="News",
                body=body,
                **fields,
            )
            for n in range(count)
        ]


def test_a_bare_worker_delivers_system_and_campaign_mail(
    smtp_server, smtp_account_for, celery_worker_process
):
    smtp_account_for(smtp_server, verified_at=timezone.now())
    smtp_account_for(smtp_server, account_type="campaigns", verified_at=timezone.now())

    send("campaigns", count=policy.BATCH_SIZE + 50)
    send("system")

    wait_until(all_sent(policy.BATCH_SIZE + 51), message="every message to be sent")
    assert len(smtp_server.messages) == policy.BATCH_SIZE + 51
    assert set(smtp_server.logins) == {smtp_server.username}
    # Campaign mail went in batches, each on one connection, not one connection per message.
    assert smtp_server.connections <= 6


def test_system_mail_goes_out_while_every_campaign_process_is_busy(
    start_celery_worker, sink, make_account, smtp_server, smtp_account_for
):  # start_celery_worker first: its workers stop after the sink lets their batches go
    # Production runs one worker per queue: `-Q campaigns -n campaigns@%h`, `-Q mail -n mail@%h`.
    campaign_sink, port = sink(delay=0)
    sink_account(make_account, port)
    smtp_account_for(smtp_server, verified_at=timezone.now())
    start_celery_worker(queues=["campaigns"], concurrency=2)
    mail_worker = start_celery_worker(queues=["mail"], concurrency=1)

    campaign_sink.hold()  # each campaign process starts its batch, and waits in the sink
    campaign = send("campaigns", count=2 * policy.BATCH_SIZE + 50)
    wait_until(lambda: campaign_sink.held >= 2, message="both campaign processes to be sending")
    [system_mail] = send("system")

    wait_until(lambda: status(system_mail) == Status.SENT, message="the system mail to be sent")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["reader0@example.com"]]
    campaign_rows = OutboundMessage.objects.filter(account_type="campaigns")
    assert Counter(campaign_rows.values_list("status", flat=True)) == {
        Status.SENDING: 2 * policy.BATCH_SIZE, Status.QUEUED: 50,
    }  # fmt: skip
    assert "tasks.deliver_batch[" not in mail_worker.log()  # never received one

    campaign_sink.release()
    wait_until(all_sent(len(campaign) + 1), timeout=60, message="the campaign to be sent")
    assert len(campaign_sink.received) == len(campaign)


def test_two_processes_open_no_more_connections_than_the_account_allows(
    start_celery_worker, sink, make_account
):
    held_sink, port = sink(delay=0)
    sink_account(make_account, port, max_connections=1)  # Exchange allows 3; here 1
    start_celery_worker(queues=["campaigns"], concurrency=2)

    held_sink.hold()  # the first batch sends its first message and waits in the sink
    campaign = send("campaigns", count=2 * policy.BATCH_SIZE + 50)
    waiting = OutboundMessage.objects.filter(last_error__contains="every connection it may open")
    wait_until(waiting.exists, message="the second batch to find the connection taken")
    assert held_sink.held == 1  # not 2: the other process did not connect
    assert "(1 at once); waiting for one to close." in waiting.first().last_error

    held_sink.release()
    wait_until(all_sent(len(campaign)), timeout=60, message="the campaign to be sent")
    assert len(held_sink.received) == len(campaign)


def test_django_send_mail_is_delivered_by_a_worker(
    settings, smtp_server, smtp_account_for, celery_worker_process
):
    settings.EMAIL_BACKEND = "outbox.backends.EmailBackend"
    smtp_account_for(smtp_server, verified_at=timezone.now(), from_name="Acme CRM")

    assert mail.send_mail("Password reset", "Follow the link", None, ["ann@example.com"]) == 1

    wait_until(all_sent(1), message="the password reset mail to be sent")
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["ann@example.com"]
    assert received.message["From"] == "Acme CRM <crm@example.com>"
    assert received.message["Subject"] == "Password reset"
    assert received.message.get_content().strip() == "Follow the link"


def test_an_external_account_sends_through_mailgun_from_a_worker(
    mailgun_server, mailgun_account_for, celery_worker_process
):
    mailgun_account_for(mailgun_server, account_type="campaigns", verified_at=timezone.now())

    rows = send("campaigns", count=3)

    wait_until(all_sent(3), message="the campaign to be sent through Mailgun")
    [call] = mailgun_server.calls()  # one batch call with recipient-variables
    assert sorted(letter["to"] for letter in call.personal()) == [
        "reader0@example.com", "reader1@example.com", "reader2@example.com",
    ]  # fmt: skip
    assert call.auth_ok and call.domain == "mg.example.com"
    provider_ids = OutboundMessage.objects.values_list("provider_message_id", flat=True)
    assert len(rows) == 3 and len(set(provider_ids)) == 1  # the call's id on every row
    assert re.fullmatch(r"<[0-9a-f]{32}@mg\.example\.com>", provider_ids[0])


def test_a_large_campaign_leaves_a_worker_in_calls_of_the_batch_size(
    mailgun_server, mailgun_account_for, celery_worker_process
):
    mailgun_account_for(mailgun_server, account_type="campaigns", verified_at=timezone.now())
    addresses = [f"reader{n}@example.com" for n in range(2500)]
    with transaction.atomic():
        services.queue_campaign("campaigns", addresses, subject="News", body="Hello")

    wait_until(all_sent(2500), message="the campaign to be sent through Mailgun")
    calls = mailgun_server.calls()
    assert sorted(len(call.fields["to"]) for call in calls) == [500, 1000, 1000]
    assert sorted(to for call in calls for to in call.fields["to"]) == sorted(addresses)


class SinkHandler:
    """A plain SMTP sink taking `delay` s per message and recording each Message-ID. While
    `hold()` is on, each message waits in DATA until `release()`; `held` counts them."""

    def __init__(self, delay):
        self.delay, self.received, self.held = delay, [], 0
        self._open = threading.Event()
        self._open.set()

    def hold(self):
        self._open.clear()

    def release(self):
        self._open.set()

    async def handle_DATA(self, server, session, envelope):
        if not self._open.is_set():
            self.held += 1
            while not self._open.is_set():
                await asyncio.sleep(0.01)
            self.held -= 1
        await asyncio.sleep(self.delay)
        headers = envelope.original_content.split(b"\r\n\r\n", 1)[0].decode()
        self.received.append(re.search(r"^Message-ID: (.+)$", headers, re.M | re.I)[1].strip())
        return "250 OK"


@pytest.fixture
def sink(smtp_test_settings):
    """sink(delay=0.02) -> a started plain SMTP sink (see SinkHandler), stopped after the test."""
    controllers = []

    def start(delay=0.02):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        handler = SinkHandler(delay)
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.handler.release()
        controller.stop()


def sink_account(make_account, port, account_type="campaigns", **fields):
    return make_account(
        account_type=account_type, host="127.0.0.1", port=port, security="none",
        username="", password="", verified_at=timezone.now(), **fields,
    )  # fmt: skip


def test_a_killed_worker_loses_nothing_and_resends_at_most_what_was_in_flight(
    sink, make_account, celery_worker_process
):
    slow_sink, port = sink(delay=0.02)
    sink_account(make_account, port)
    rows = send("campaigns", count=3 * policy.BATCH_SIZE)
    message_id = {m.pk: services.message_as_email(m).extra_headers["Message-ID"] for m in rows}

    wait_until(lambda: len(slow_sink.received) >= 40, message="the first batches to be sending")
    celery_worker_process.kill()  # SIGKILL, mid-batch

    statuses = Counter(OutboundMessage.objects.values_list("status", flat=True))
    assert set(statuses) <= {Status.SENT, Status.SENDING, Status.QUEUED}
    sending = OutboundMessage.objects.filter(status=Status.SENDING)
    in_flight = {message_id[pk] for pk in sending.values_list("pk", flat=True)}
    assert 0 < len(in_flight) <= 2 * policy.BATCH_SIZE  # the batches its two processes held

    # Their lease runs out (five minutes; here at once) and the scheduler's tick (celery
    # beat) runs. Before the worker is back: expiring the lease of rows the restarted worker
    # has just claimed would make the test itself hand them out twice.
    OutboundMessage.objects.filter(status=Status.SENDING).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    tasks.sweep_outbox.delay()
    celery_worker_process.start()

    wait_until(all_sent(len(rows)), timeout=60, message="every message to be sent")
    received = Counter(slow_sink.received)
    assert set(received) == set(message_id.values())  # nothing lost
    resent = {message_id for message_id, times in received.items() if times > 1}
    assert resent <= in_flight


def test_mail_queued_while_redis_is_unreachable_is_sent_by_the_sweeper(
    smtp_server, smtp_account_for, celery_broker, celery_worker_process, caplog
):
    smtp_account_for(smtp_server, verified_at=timezone.now())

    with celery_broker.unreachable():
        [message] = send("system")  # the commit's enqueue fails: Redis cannot be reached

    assert "Could not enqueue deliver_message" in caplog.text
    message.refresh_from_db()
    assert message.status == Status.QUEUED and message.enqueued_at is None  # no task pending
    tasks.sweep_outbox.delay()  # the scheduler's next tick (celery beat) enqueues it

    wait_until(all_sent(1), message="the message to be sent")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["reader0@example.com"]]


def test_campaign_mail_waits_on_its_own_queue_one_task_per_transaction(
    smtp_server, smtp_account_for, celery_broker
):
    smtp_account_for(smtp_server, verified_at=timezone.now())
    campaigns = smtp_account_for(smtp_server, account_type="campaigns", verified_at=timezone.now())

    system_mail = send("system", count=3)
    send("campaigns", count=50)  # one transaction: one batch task starts them all

    assert sorted(_decoded(p) for p in celery_broker.queued("mail")) == sorted(
        [message.pk] for message in system_mail
    )
    assert [_decoded(p) for p in celery_broker.queued("campaigns")] == [[campaigns.pk]]


def _decoded(payload):
    """The task arguments in a raw kombu message on Redis (its body is base64 JSON)."""
    message = json.loads(payload)
    return json.loads(base64.b64decode(message["body"]))[0]


def test_no_broker_payload_or_log_line_holds_a_password_a_body_or_a_code(
    smtp_server, smtp_account_for, celery_broker, celery_worker, caplog
):
    system = smtp_account_for(smtp_server, verified_at=timezone.now())
    smtp_account_for(smtp_server, account_type="campaigns", verified_at=timezone.now())
    body = "Your balance is 1,234.56 EUR"
    with transaction.atomic():
        send("system", body=body, html_body=f"<p>{body}</p>")
        send("campaigns", body=body)
        test = account_services.request_test_email(system, to="admin@example.com")

    queued = celery_broker.queued("mail", "campaigns")  # no worker yet: the tasks wait
    assert sorted(_decoded(payload) for payload in queued) == sorted(
        [[OutboundMessage.objects.get(account_type="system").pk],
         [OutboundMessage.objects.get(account_type="campaigns").account_id], [test.pk]]
    )  # fmt: skip
    celery_worker.start()
    wait_until(all_sent(2), message="both messages to be sent")
    wait_until(lambda: TestEmail.objects.get(pk=test.pk).status == TestEmail.Status.SENT)

    [mail] = [m for m in smtp_server.messages if m.rcpt_tos == ["admin@example.com"]]
    code = re.search(r"Confirmation code: (\d{6})", mail.message.get_content())[1]
    secrets = [smtp_server.password, body, code]
    stored = b"\n".join(queued + celery_broker.payloads()).decode(errors="replace")
    decoded = "\n".join(json.dumps(_decoded(payload)) for payload in queued)
    for text in (stored, decoded, celery_worker.log(), caplog.text):
        assert not [secret for secret in secrets if secret in text]


def test_no_broker_payload_or_log_line_holds_an_oauth_token(
    xoauth2_server, oauth_server, oauth_account_for, celery_broker, celery_worker, caplog
):
    account = sign_in(oauth_account_for(xoauth2_server, verified_at=timezone.now()))
    tokens = oauth_server.live_tokens()
    # The access token has expired: the worker must refresh it, then log in with XOAUTH2.
    oauth_server.expire_access_tokens()
    SmtpAccount.objects.filter(pk=account.pk).update(oauth_access_token_expires_at=None)
    [message] = send("system", body="Your invoice")
    queued = celery_broker.queued("mail")

    celery_worker.start()
    wait_until(all_sent(1), message="the message to be sent through XOAUTH2")

    assert oauth_server.refreshes == 1 and xoauth2_server.messages
    tokens += oauth_server.live_tokens()  # the refresh rotated both
    stored = b"\n".join(queued + celery_broker.payloads()).decode(errors="replace")
    for text in (stored, celery_worker.log(), caplog.text):
        assert not [token for token in tokens if token in text]
