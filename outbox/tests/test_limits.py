"""The shared sending limits: real Redis (db 4), two real processes, the database history."""

import multiprocessing
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from outbox import services
from outbox.models import Attempt, OutboundMessage
from outbox.services import limits
from smtp_accounts.models import TestEmail
from smtp_accounts.services import deliver_test_email, request_test_email
from smtp_accounts.tests.fixtures.worker import wait_until

Status = OutboundMessage.Status


def sent(account, ago, count=1):
    """`count` messages of `account` handed to its server `ago` (a timedelta) ago."""
    for _ in range(count):
        message = OutboundMessage.objects.create(
            account=account, account_type=account.account_type, from_email=account.email,
            to=["x@example.com"], subject="s", status=OutboundMessage.Status.SENT,
        )
        Attempt.objects.create(message=message, account=account, account_name=account.name,
                               at=timezone.now() - ago, outcome=Attempt.Outcome.SENT)


def take(account, n):
    """Reserve `n` and claim as many rows as granted, in one transaction (as a claim does:
    without a broker, the claimed rows are what holds the reservation)."""
    with transaction.atomic():
        reservation = limits.reserve(account, n)
        for _ in range(reservation.granted):
            OutboundMessage.objects.create(
                account=account, account_type=account.account_type, from_email=account.email,
                to=["x@example.com"], subject="s", status=OutboundMessage.Status.SENDING,
                lease_until=timezone.now() + timedelta(minutes=5),
            )
    return reservation


def test_an_account_without_limits_gets_all_it_asks(make_account, in_redis):
    assert limits.reserve(make_account(), 500) == limits.Reservation(500, None)
    assert not in_redis.keys()


@pytest.mark.parametrize("backend", ["in_redis", "in_database"])
def test_never_more_than_the_limit_in_a_window(make_account, backend, request):
    request.getfixturevalue(backend)
    account = make_account(max_per_minute=5)
    first = take(account, 3)
    assert (first.granted, first.opens_at) == (3, None)
    second = take(account, 3)
    assert second.granted == 2
    assert timezone.now() < second.opens_at <= timezone.now() + timedelta(seconds=60)
    assert take(account, 1).granted == 0


def test_every_window_counts_and_the_latest_opening_is_given(make_account, in_redis):
    account = make_account(max_per_minute=10, max_per_day=12)
    sent(account, timedelta(hours=2), count=10)
    granted = limits.reserve(account, 5)
    assert granted.granted == 2  # the minute allows 10, the day only 2 more
    assert granted.opens_at > timezone.now() + timedelta(hours=21)


def _reserve_one_at_a_time(account, tries, start, results):
    limits.forget_connections()  # the parent's sockets are not this process's
    start.wait()
    results.put(sum(limits.reserve(account, 1).granted for _ in range(tries)))


def test_two_processes_share_one_count(make_account, in_redis):
    account = make_account(max_per_minute=5)
    assert limits.reserve(account, 0).granted == 0
    limits.reserve(account, 1)  # seeds the log from the (empty) history in this process
    fork = multiprocessing.get_context("fork")
    start, results = fork.Event(), fork.Queue()
    workers = [fork.Process(target=_reserve_one_at_a_time, args=(account, 10, start, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    totals = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(totals) == 4  # 5 in the minute: 1 here, 4 between the two processes


def test_redis_emptied_mid_day_the_daily_count_still_holds(make_account, in_redis):
    account = make_account(max_per_day=5)
    sent(account, timedelta(hours=20), count=2)
    TestEmail.objects.create(account=account, recipient="me@example.com",
                             sent_at=timezone.now() - timedelta(hours=3))
    assert limits.reserve(account, 1).granted == 1
    sent(account, timedelta(seconds=1))  # the reservation above was sent and recorded
    in_redis.flushdb()  # Redis restarted empty
    again = limits.reserve(account, 5)
    assert again.granted == 1  # 2 + 1 test + 1 before the flush, so one more of 5
    assert again.opens_at == pytest.approx(
        Attempt.objects.order_by("at").first().at + timedelta(days=1), abs=timedelta(seconds=1)
    )


def test_a_longer_window_set_later_rebuilds_the_log(make_account, in_redis):
    account = make_account(max_per_minute=100)
    sent(account, timedelta(hours=5), count=3)
    assert limits.reserve(account, 1).granted == 1  # the log holds only the last minute
    account.max_per_day = 4
    assert limits.reserve(account, 5).granted == 0  # 3 from the history + 1 just now


def test_without_a_broker_claimed_rows_count_as_in_flight(make_account, in_database):
    account = make_account(max_per_minute=3)
    sent(account, timedelta(seconds=30))
    OutboundMessage.objects.create(
        account=account, account_type=account.account_type, from_email=account.email,
        to=["x@example.com"], subject="s", status=OutboundMessage.Status.SENDING,
        lease_until=timezone.now() + timedelta(minutes=5),
    )
    assert limits.reserve(account, 5).granted == 1


def test_windows_shrink_with_the_scale_setting(make_account, settings):
    settings.SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE = 0.01
    account = make_account(max_per_minute=5, max_per_hour=50)
    assert limits.windows(account) == {0.6: 5, 36.0: 50}


def test_sends_older_than_the_window_no_longer_count():
    now = timezone.now()
    log = [now - timedelta(seconds=61), now - timedelta(seconds=59)]
    grant = limits.grant_from_log(log, now, 5, {60: 2})
    assert grant.granted == 1
    assert grant.opens_at == now + timedelta(seconds=1)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_send_exactly_the_limit_per_window(
        settings, smtp_server, smtp_account_for, celery_broker, start_celery_worker):
    # A minute shrunk to 12 s, so the test need not wait a real one for the window to open.
    settings.SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE = 0.2
    settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL = celery_broker.url  # as the workers count
    account = smtp_account_for(smtp_server, max_per_minute=5, verified_at=timezone.now())
    for _ in range(2):
        start_celery_worker(concurrency=1)
    with transaction.atomic():
        for n in range(12):
            services.send_email(account_type="system", to=[f"r{n}@example.com"],
                                subject="News", body="Hello")
    waiting = OutboundMessage.objects.filter(status=Status.QUEUED, enqueued_at__isnull=True)
    wait_until(lambda: waiting.count() == 7, message="7 messages held back by the limit")
    assert len(smtp_server.messages) == 5  # not 10: the two workers share one count
    held = waiting.first()
    assert f"“{account.name}” is at its per-minute limit until" in held.last_error
    assert held.attempts == 0

    # The window slides open 12 s later, sooner than beat's next tick (20 s): the wake-up
    # set for its opening hands out the next 5, still not more, with no tick at all.
    def next_five():
        return len(smtp_server.messages) == 10 and waiting.count() == 2

    wait_until(next_five, timeout=30, message="the next window's 5")
    assert len(smtp_server.messages) == 10
    assert not OutboundMessage.objects.filter(status=Status.FAILED).exists()


@pytest.mark.parametrize("where", ["in_redis", "in_database"])
def test_a_test_email_counts_toward_the_limits(where, request, smtp_server, smtp_account_for):
    request.getfixturevalue(where)
    account = smtp_account_for(smtp_server, max_per_minute=2)
    limits.reserve(account, 0)  # a log in use (in Redis: seeded before the test was sent)
    test = request_test_email(account, to="me@example.com")
    deliver_test_email(test.pk)
    assert len(smtp_server.messages) == 1
    assert limits.reserve(account, 5).granted == 1  # the test took one of the 2


@pytest.mark.parametrize("where", ["in_redis", "in_database"])
def test_at_its_limit_a_test_email_waits_for_the_window(where, request, smtp_server,
                                                         smtp_account_for):
    request.getfixturevalue(where)
    account = smtp_account_for(smtp_server, max_per_minute=1)
    sent(account, timedelta(seconds=10))
    test = request_test_email(account, to="me@example.com")
    deliver_test_email(test.pk)
    test.refresh_from_db()
    assert not smtp_server.messages and test.status == TestEmail.Status.FAILED
    assert f"“{account.name}” is at its per-minute limit until" in test.error
    assert test.error.endswith("Send the test again after that.")


def test_with_every_connection_in_use_elsewhere_mail_goes_to_the_next_account_or_waits(
        in_redis, smtp_server, smtp_ssl_server, smtp_account_for):
    a = smtp_account_for(smtp_server, name="A", priority=1, max_connections=1,
                         verified_at=timezone.now())
    with limits.connection_slot(a) as held:  # another worker's connection to A
        assert held
        waiting = services.send_email(account_type="system", to=["ann@example.com"],
                                      subject="Invoice", body="Hello")
        services.deliver_message(waiting.pk)
        waiting.refresh_from_db()
        b = smtp_account_for(smtp_ssl_server, name="B", priority=2, verified_at=timezone.now())
        moved = services.send_email(account_type="system", to=["bob@example.com"],
                                    subject="Invoice", body="Hello")
        services.deliver_message(moved.pk)
        moved.refresh_from_db()
    assert not smtp_server.messages
    assert (waiting.status, waiting.account, waiting.attempts) == (Status.QUEUED, a, 0)
    assert "“A” has every connection it may open in use (1 at once)" in waiting.last_error
    assert timezone.now() < waiting.next_attempt_at <= timezone.now() + timedelta(seconds=5)
    assert (moved.status, moved.account, len(smtp_ssl_server.messages)) == (Status.SENT, b, 1)

    OutboundMessage.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    services.deliver_message(waiting.pk)  # the other worker let its connection go
    waiting.refresh_from_db()
    assert (waiting.status, len(smtp_server.messages)) == (Status.SENT, 1)


def test_a_dead_workers_connection_slot_frees_itself(in_redis, make_account, settings):
    account = make_account(max_connections=1)
    in_redis.zadd(limits.SLOTS_KEY.format(pk=account.pk), {"dead-worker": 0})  # lease over
    with limits.connection_slot(account) as held:
        assert held
        with limits.connection_slot(account) as second:
            assert not second
    with limits.connection_slot(account) as again:
        assert again
