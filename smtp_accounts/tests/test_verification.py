"""services.verification: the test email, its code and the rules around it, against aiosmtpd."""

import re
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from smtp_accounts import services
from smtp_accounts.models import SmtpAccount, TestEmail
from smtp_accounts.services import CodeRejected, TestEmailThrottled

CODE_LINE = re.compile(r"Confirmation code: (\d{6})")


def text_of(received):
    return received.message.get_body(preferencelist=("plain",)).get_content()


def code_lines(received):
    """The body's lines that mention the code (the contract: exactly one, exactly so)."""
    return [line for line in text_of(received).splitlines() if "Confirmation code" in line]


def send_test(account, server, to="admin@example.com"):
    """Request and deliver a test (as the task would); return (test, code that arrived)."""
    test = services.request_test_email(account, to=to)
    services.deliver_test_email(test.pk)
    test.refresh_from_db()
    (line,) = code_lines(server.messages[-1])
    return test, CODE_LINE.fullmatch(line).group(1)


def age(test, seconds):
    """Pretend `test` was requested `seconds` earlier (to step past the throttle)."""
    TestEmail.objects.filter(pk=test.pk).update(
        created_at=test.created_at - timedelta(seconds=seconds)
    )


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
def account(smtp_server, smtp_account_for):
    return smtp_account_for(smtp_server)


def test_test_email_arrives_through_the_account_with_one_code_line(account, smtp_server):
    test, _code = send_test(account, smtp_server)

    received = smtp_server.messages[-1]
    assert "Test email" in received.message["Subject"]
    assert received.rcpt_tos == ["admin@example.com"]
    assert received.login == smtp_server.username
    assert [CODE_LINE.fullmatch(line) is not None for line in code_lines(received)] == [True]
    assert test.status == TestEmail.Status.SENT
    assert test.expires_at == test.sent_at + timedelta(minutes=15)


def test_only_a_keyed_hash_of_the_code_is_stored(account, smtp_server):
    first, code = send_test(account, smtp_server)
    age(first, 60)
    second = services.request_test_email(account, to="admin@example.com")
    # The hash is bound to its test: copied onto another test it matches nothing there.
    TestEmail.objects.filter(pk=second.pk).update(
        code_hash=first.code_hash, status=TestEmail.Status.SENT, expires_at=first.expires_at
    )

    assert code not in first.code_hash
    assert first.code_hash.startswith("hmac-sha256$")
    with pytest.raises(CodeRejected, match="not right"):
        services.confirm_test_email(account, code)


def test_the_right_code_verifies_the_account(account, smtp_server):
    _test, code = send_test(account, smtp_server)

    confirmed = services.confirm_test_email(account, f" {code[:3]} {code[3:]} ")

    account.refresh_from_db()
    assert confirmed.status == TestEmail.Status.CONFIRMED
    assert account.verified_at is not None and account.is_ready
    with pytest.raises(CodeRejected, match="already used"):
        services.confirm_test_email(account, code)


def test_a_wrong_code_says_how_many_tries_are_left(account, smtp_server):
    _test, code = send_test(account, smtp_server)

    with pytest.raises(CodeRejected, match=r"That code is not right\. 4 tries left\.") as info:
        services.confirm_test_email(account, wrong(code))

    assert info.value.tries_left == 4
    assert services.confirm_test_email(account, code).status == TestEmail.Status.CONFIRMED


def test_five_wrong_codes_burn_it_and_then_the_right_code_fails_too(account, smtp_server):
    test, code = send_test(account, smtp_server)
    for _ in range(4):
        with pytest.raises(CodeRejected, match=r"tr(y|ies) left"):
            services.confirm_test_email(account, wrong(code))

    with pytest.raises(CodeRejected, match="last try") as last:
        services.confirm_test_email(account, wrong(code))
    with pytest.raises(CodeRejected, match="no longer works after 5 wrong tries"):
        services.confirm_test_email(account, code)

    test.refresh_from_db()
    account.refresh_from_db()
    assert last.value.tries_left == 0
    assert test.status == TestEmail.Status.BURNED
    assert account.verified_at is None


def test_a_malformed_code_does_not_use_up_a_try(account, smtp_server):
    test, _code = send_test(account, smtp_server)

    with pytest.raises(CodeRejected, match="six-digit code") as info:
        services.confirm_test_email(account, "12ab")

    test.refresh_from_db()
    assert test.attempts == 0 and info.value.tries_left == 5


def test_an_expired_code_asks_for_a_new_test(account, smtp_server):
    test, code = send_test(account, smtp_server)
    TestEmail.objects.filter(pk=test.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(CodeRejected, match=r"expired.*Send a new test"):
        services.confirm_test_email(account, code)


def test_a_new_test_invalidates_the_previous_code(account, smtp_server):
    old, old_code = send_test(account, smtp_server)
    age(old, 31)
    new, new_code = send_test(account, smtp_server)

    old.refresh_from_db()
    assert old.status == TestEmail.Status.SUPERSEDED
    if old_code != new_code:  # one chance in a million that both codes are the same
        with pytest.raises(CodeRejected):
            services.confirm_test_email(account, old_code)
    assert services.confirm_test_email(account, new_code).pk == new.pk


def test_tests_of_one_account_are_throttled(account, smtp_server, smtp_account_for):
    send_test(account, smtp_server)

    with pytest.raises(TestEmailThrottled) as info:
        services.request_test_email(account, to="admin@example.com")

    assert 1 <= info.value.wait_seconds <= 30
    assert re.fullmatch(r"Wait \d+ seconds? before sending another test email\.", str(info.value))
    # Another account is not held up.
    services.request_test_email(smtp_account_for(smtp_server), to="admin@example.com")


@pytest.mark.parametrize("change", ["port", "email", "password"])
def test_changing_how_the_account_connects_unverifies_it_and_voids_the_code(
    account, smtp_server, change
):
    first, code = send_test(account, smtp_server)
    services.confirm_test_email(account, code)
    age(first, 60)
    _pending, pending_code = send_test(account, smtp_server)
    account = SmtpAccount.objects.get(pk=account.pk)

    if change == "port":
        account.port += 1
    elif change == "email":
        account.email = "other@example.com"
    services.save_account(account, password="n3w-pass" if change == "password" else None)

    account.refresh_from_db()
    assert account.verified_at is None
    with pytest.raises(CodeRejected, match="replaced"):
        services.confirm_test_email(account, pending_code)


def test_renaming_the_account_keeps_it_verified(account, smtp_server):
    _test, code = send_test(account, smtp_server)
    services.confirm_test_email(account, code)
    account = SmtpAccount.objects.get(pk=account.pk)

    account.name = "Renamed"
    services.save_account(account)

    account.refresh_from_db()
    assert account.verified_at is not None


def test_a_refused_login_is_kept_on_the_test_and_the_account(smtp_server, smtp_account_for):
    account = smtp_account_for(smtp_server, password="not-the-password")

    test = services.request_test_email(account, to="admin@example.com")
    services.deliver_test_email(test.pk)

    test.refresh_from_db()
    account.refresh_from_db()
    assert test.status == TestEmail.Status.FAILED
    assert "rejected the login" in test.error and "Password" in test.error
    assert "not-the-password" not in test.error
    assert account.last_error == test.error
    assert smtp_server.messages == []
    with pytest.raises(CodeRejected, match="could not be sent"):
        services.confirm_test_email(account, "123456")


def test_a_silent_server_times_out_with_a_hint(smtp_greeting_server, smtp_account_for):
    account = smtp_account_for(smtp_greeting_server(None))

    test = services.request_test_email(account, to="admin@example.com")
    services.deliver_test_email(test.pk)

    test.refresh_from_db()
    assert test.status == TestEmail.Status.FAILED
    assert test.error.startswith("Timed out after 1 s")
    assert "firewall" in services.failure_hint(test.error)


def test_an_external_account_is_tested_through_mailgun(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)

    test = services.request_test_email(account, to="admin@example.com")
    services.deliver_test_email(test.pk)

    (request,) = mailgun_server.requests
    assert "Test email" in request.field("subject")
    code = CODE_LINE.search(request.field("text")).group(1)
    assert services.confirm_test_email(account, code).status == TestEmail.Status.CONFIRMED


def test_an_unknown_mailgun_domain_is_named_in_the_failure(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server, domain="mg.unknown-domain.com")

    test = services.request_test_email(account, to="admin@example.com")
    services.deliver_test_email(test.pk)

    test.refresh_from_db()
    assert test.status == TestEmail.Status.FAILED
    assert "Mailgun does not know the domain mg.unknown-domain.com" in test.error
    assert mailgun_server.api_key not in test.error


def test_delivering_twice_sends_one_email(account, smtp_server):
    test = services.request_test_email(account, to="admin@example.com")

    services.deliver_test_email(test.pk)
    services.deliver_test_email(test.pk)

    assert len(smtp_server.messages) == 1


def test_no_code_to_confirm_before_a_test(account):
    with pytest.raises(CodeRejected, match="Send a test first"):
        services.confirm_test_email(account, "123456")
    with pytest.raises(ValidationError):
        services.request_test_email(account, to="not an address")
    with pytest.raises(ValidationError):
        services.request_test_email(account, to="a@example.com\r\nBcc: b@example.com")


@pytest.mark.django_db(transaction=True)
def test_simultaneous_wrong_codes_each_count_as_a_try(smtp_server, smtp_account_for):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's test database locks whole tables; run on PostgreSQL")
    account = smtp_account_for(smtp_server)
    test, code = send_test(account, smtp_server)
    barrier = threading.Barrier(2)

    def confirm_wrong():
        barrier.wait()
        try:
            services.confirm_test_email(account, wrong(code))
        except CodeRejected:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm_wrong) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    test.refresh_from_db()
    assert test.attempts == 2


def _waiting_on_a_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")  # fmt: skip
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rival", ["confirm", "save"])
def test_a_test_request_and_a_confirm_or_save_never_deadlock(
    smtp_server, smtp_account_for, monkeypatch, rival
):
    # Defect 2: request_test_email locked the account, then its TestEmail rows, while
    # confirm_test_email and save_account locked them the other way round: on PostgreSQL one
    # of the two died with "deadlock detected" (a 500). One order now: the account first.
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's test database locks whole tables; run on PostgreSQL")
    from smtp_accounts.services import verification
    from smtp_accounts.tests.fixtures.worker import wait_until

    account = smtp_account_for(smtp_server)
    test, code = send_test(account, smtp_server)
    monkeypatch.setattr(verification, "TEST_INTERVAL", timedelta(0))
    locked, go, errors = threading.Event(), threading.Event(), []
    check_throttle = verification._check_throttle

    def paused_inside_its_transaction(account):  # right after it locked the account
        locked.set()
        go.wait(10)
        check_throttle(account)

    monkeypatch.setattr(verification, "_check_throttle", paused_inside_its_transaction)

    def run(work):
        try:
            work()
        except CodeRejected:
            pass  # a normal answer; a database error is what this test is about
        except Exception as err:  # noqa: BLE001 -- recorded and asserted on below
            errors.append(err)
        finally:
            connection.close()

    def rival_work():
        if rival == "confirm":
            services.confirm_test_email(SmtpAccount.objects.get(pk=account.pk), code)
        else:
            edited = SmtpAccount.objects.get(pk=account.pk)
            edited.host = "127.0.0.2"  # reconnects: voids the pending codes
            services.save_account(edited)

    requester = threading.Thread(target=run, args=(
        lambda: services.request_test_email(account, to="admin@example.com"),))  # fmt: skip
    requester.start()
    assert locked.wait(10)
    other = threading.Thread(target=run, args=(rival_work,))
    other.start()
    wait_until(lambda: _waiting_on_a_lock() == 1, message="the rival to wait for a lock")
    go.set()
    for thread in (requester, other):
        thread.join(30)

    assert errors == []
    assert TestEmail.objects.filter(account=account).count() == 2
