"""Routing against three real aiosmtpd servers (accounts A, B, C of one type), inline.

Priority order, limits at hand-out, throttling pauses, failover before the server accepted
anything, and never after DATA was answered.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from outbox import services
from outbox.models import Attempt, OutboundMessage
from outbox.services.enqueue import message_as_email
from smtp_accounts.services import pause_account, resume_account
from smtp_accounts.tests.fixtures.smtp_server import DROP

Status = OutboundMessage.Status


@pytest.fixture
def accounts(smtp_server, smtp_ssl_server, smtp_plain_server, smtp_account_for, settings):
    """(A, B, C): ready System accounts on three servers, Priority 1, 2, 3."""
    settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL = ""  # the database counts (no broker here)
    made = []
    for priority, server in enumerate((smtp_server, smtp_ssl_server, smtp_plain_server), 1):
        made.append(smtp_account_for(server, name="ABC"[priority - 1], priority=priority,
                                     verified_at=timezone.now()))
    return made


def send(**fields):
    values = {"to": ["ann@example.com"], "subject": "Invoice 42", "body": "Hello Ann"}
    message = services.send_email(account_type="system", **{**values, **fields})
    services.deliver_message(message.pk)
    message.refresh_from_db()
    return message


def tried(message):
    """[(account name, outcome)] of the message's history, oldest first."""
    return list(message.history.order_by("at", "pk").values_list("account_name", "outcome"))


def test_the_lowest_priority_sends(accounts, smtp_server, smtp_ssl_server):
    a, b, _c = accounts
    a.priority = 20
    a.save()
    message = send()
    assert message.account == b and len(smtp_ssl_server.messages) == 1
    assert not smtp_server.messages


@pytest.mark.parametrize("reply", [
    "421 4.7.0 [TSS04] Messages temporarily deferred",
    "550 5.4.5 Daily user sending quota exceeded.",
    "451 4.3.2 Slow down",
    # Exchange Online's answer to a 4th connection at once (it allows 3 per mailbox).
    "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
])
def test_throttling_at_mail_pauses_and_fails_over(accounts, smtp_server, smtp_ssl_server, reply):
    a, b, _c = accounts
    smtp_server.fail("mail", reply)
    message = send()
    assert message.status == Status.SENT and message.account == b
    assert len(smtp_ssl_server.messages) == 1 and message.attempts == 1
    assert tried(message) == [("A", "throttled"), ("B", "sent")]
    a.refresh_from_db()
    assert a.is_paused and reply.split()[0] in a.pause_reason
    assert timedelta(seconds=55) < a.paused_until - timezone.now() <= timedelta(seconds=60)


def test_a_refused_login_fails_over_and_shows_on_the_account(accounts, smtp_server,
                                                              smtp_ssl_server):
    a, b, _c = accounts
    smtp_server.fail("auth", "535 5.7.8 Authentication credentials invalid")
    message = send()
    assert (message.status, message.account) == (Status.SENT, b)
    assert tried(message) == [("A", "configuration"), ("B", "sent")]
    a.refresh_from_db()
    assert "535" in a.last_error and not a.is_paused


def test_a_deferral_after_data_retries_on_the_same_account(accounts, smtp_server,
                                                            smtp_ssl_server):
    a, _b, _c = accounts
    smtp_server.fail("data", "451 4.3.0 Queue full, try later")
    message = send()
    assert (message.status, message.account, message.attempts) == (Status.QUEUED, a, 1)
    assert not smtp_ssl_server.messages  # it may have been delivered: never a second account


def test_a_quota_reply_to_data_pauses_and_the_message_waits_for_its_account(
        accounts, smtp_server, smtp_ssl_server):
    a, _b, _c = accounts
    smtp_server.fail("data", "554 5.2.0 STOREDRV.Submission.Exception:"
                             "SubmissionQuotaExceededException")
    message = send()
    a.refresh_from_db()
    assert a.is_paused and not smtp_ssl_server.messages
    assert (message.status, message.account, message.attempts) == (Status.QUEUED, a, 0)
    assert message.next_attempt_at == a.paused_until
    assert f"“A” is paused until {timezone.localtime(a.paused_until):%H:%M}" in message.last_error


def test_a_refused_recipient_fails_for_that_recipient_only(accounts, smtp_server):
    smtp_server.reject_recipient("bob@example.com")
    message = send(to=["ann@example.com", "bob@example.com"])
    assert message.status == Status.SENT and message.account == accounts[0]
    assert "bob@example.com" in message.last_error
    assert smtp_server.messages[0].rcpt_tos == ["ann@example.com"]


def test_a_paused_account_is_passed_over(accounts, smtp_server, smtp_ssl_server):
    a, b, _c = accounts
    pause_account(a, timezone.now() + timedelta(minutes=5), "Throttled")
    message = send()
    assert (message.account, len(smtp_ssl_server.messages)) == (b, 1)
    assert not smtp_server.messages


def test_at_its_limit_the_next_account_takes_over(accounts, smtp_server, smtp_ssl_server):
    a, b, _c = accounts
    a.max_per_day = 1
    a.save()
    first, second = send(), send()
    assert (first.account, second.account) == (a, b)
    assert (len(smtp_server.messages), len(smtp_ssl_server.messages)) == (1, 1)


def test_with_every_account_paused_or_at_its_limit_mail_waits_queued(accounts, smtp_server):
    a, b, c = accounts
    a.max_per_minute = 1
    a.save()
    for other in (b, c):
        pause_account(other, timezone.now() + timedelta(minutes=30), "Throttled")
    sent, waiting = send(), send()
    assert sent.status == Status.SENT and len(smtp_server.messages) == 1
    assert (waiting.status, waiting.account, waiting.attempts) == (Status.QUEUED, a, 0)
    opens = timezone.localtime(waiting.next_attempt_at)
    assert f"“A” is at its per-minute limit until {opens:%H:%M}" in waiting.last_error
    assert timezone.now() < waiting.next_attempt_at <= timezone.now() + timedelta(minutes=1)
    assert not Attempt.objects.filter(message=waiting).exists()  # nothing failed, nothing tried


def test_the_backoff_doubles_while_the_account_keeps_being_throttled(accounts, smtp_server):
    a, b, c = accounts
    for account in (b, c):
        account.is_active = False
        account.save()
    smtp_server.fail("mail", "421 4.7.0 Try again later")
    message = send()
    a.refresh_from_db()
    first = a.paused_until - timezone.now()
    resume_account(a)
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    services.deliver_message(message.pk)
    a.refresh_from_db()
    second = a.paused_until - timezone.now()
    assert timedelta(seconds=55) < first <= timedelta(seconds=60)
    assert timedelta(seconds=115) < second <= timedelta(seconds=120)
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.QUEUED, 0)


def test_a_drop_during_data_retries_on_the_same_account_with_the_same_message_id(
        accounts, smtp_server, smtp_ssl_server):
    a, _b, _c = accounts
    smtp_server.fail("data", DROP)
    message = send()
    assert (message.status, message.account, message.attempts) == (Status.QUEUED, a, 1)
    assert not smtp_ssl_server.messages  # it may have been delivered: never a second account
    a.refresh_from_db()
    assert not a.is_paused
    smtp_server.faults.clear()
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    services.deliver_message(message.pk)
    message.refresh_from_db()
    assert (message.status, message.account, message.attempts) == (Status.SENT, a, 2)
    [received] = smtp_server.messages
    assert received.message["Message-ID"] == message_as_email(message).extra_headers["Message-ID"]
    assert [outcome for _name, outcome in tried(message)] == ["temporary", "sent"]


@pytest.fixture
def mailgun_accounts(mailgun_server, mailgun_account_for, settings):
    """(A, B): ready Campaigns accounts on two Mailgun domains, Priority 1 and 2."""
    settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL = ""
    mailgun_server.add_domain("mg.other.com")
    return [mailgun_account_for(mailgun_server, name=name, domain=domain, priority=priority,
                                verified_at=timezone.now())
            for priority, (name, domain) in enumerate(
                [("A", "mg.other.com"), ("B", "mg.example.com")], 1)]  # fmt: skip


def send_campaign():
    message = services.send_email(account_type="campaigns", to=["ann@example.com"],
                                  subject="Offer", body="Hello Ann")  # fmt: skip
    services.deliver_message(message.pk)
    message.refresh_from_db()
    return message


def test_a_mailgun_429_pauses_for_its_retry_after_and_fails_over(mailgun_accounts,
                                                                mailgun_server):
    a, b = mailgun_accounts
    mailgun_server.fail(429, domain="mg.other.com", retry_after=120)
    message = send_campaign()
    assert (message.status, message.account, message.attempts) == (Status.SENT, b, 1)
    assert tried(message) == [("A", "throttled"), ("B", "sent")]
    assert message.history.first().code == 429
    a.refresh_from_db()
    assert a.is_paused and "429" in a.pause_reason
    assert timedelta(seconds=115) < a.paused_until - timezone.now() <= timedelta(seconds=120)


def test_a_mailgun_429_without_retry_after_pauses_for_the_backoff_and_mail_waits(
        mailgun_accounts, mailgun_server):
    a, b = mailgun_accounts
    b.is_active = False
    b.save()
    mailgun_server.fail(429)
    message = send_campaign()
    a.refresh_from_db()
    assert timedelta(seconds=55) < a.paused_until - timezone.now() <= timedelta(seconds=60)
    assert (message.status, message.account, message.attempts) == (Status.QUEUED, a, 0)
    assert message.next_attempt_at == a.paused_until
    assert f"“A” is paused until {timezone.localtime(a.paused_until):%H:%M}" in message.last_error


def test_a_campaign_past_the_daily_limit_sends_the_limit_and_waits_with_the_reason(
        accounts, smtp_server):
    a, b, c = accounts
    for other in (b, c):
        other.is_active = False
        other.save()
    a.max_per_day = 20  # a 2,000-a-day Gmail account, at 1/100 scale
    a.save()
    rows = [send(to=[f"reader{n}@example.com"]) for n in range(50)]
    statuses = OutboundMessage.objects.values_list("status", flat=True)
    assert sorted(set(statuses)) == [Status.QUEUED, Status.SENT]
    assert (statuses.filter(status=Status.SENT).count(), len(smtp_server.messages)) == (20, 20)
    waiting = OutboundMessage.objects.get(pk=rows[-1].pk)
    opens = timezone.localtime(waiting.next_attempt_at)
    assert waiting.last_error == f"“A” is at its daily limit until {opens:%H:%M}."
    assert timedelta(hours=23) < waiting.next_attempt_at - timezone.now() <= timedelta(days=1)
