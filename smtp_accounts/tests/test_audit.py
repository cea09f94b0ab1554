"""The audit trail: every way in leaves exactly one entry, with the right actor, no secret.

Pages and Django's admin go through the test client (the middleware names the user and the
IP), commands through call_command and one real manage.py, the test email's failure through a
real Celery worker; the actions other branches wire (sign-in, pause) through audit's API.
"""

import io
import json
import re
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from smtp_accounts import audit, services
from smtp_accounts.models import AccountEvent, SmtpAccount, TestEmail
from smtp_accounts.tests.fixtures.worker import wait_until

FORM = {"provider": "internal", "name": "Relay", "account_type": "system",
        "host": "smtp.example.com", "port": "587", "username": "crm@example.com",
        "password": "typed-secret-1", "security": "starttls", "email": "crm@example.com",
        "from_name": "CRM", "is_active": "on"}  # fmt: skip
flow = pytest.mark.django_db(transaction=True)


def entries(**filters):
    """[(action, actor)] of the entries matching `filters`, oldest first."""
    return list(AccountEvent.objects.filter(**filters).order_by("at", "pk")
                .values_list("action", "actor"))  # fmt: skip


def trail_text():
    """Every entry as stored, as one text, to look for secrets in."""
    return json.dumps(list(AccountEvent.objects.values()), default=str)


def run(*args, stdin=""):
    out = io.StringIO()
    call_command("smtp_accounts", *args, stdout=out, stdin=io.StringIO(stdin))
    return out.getvalue()


def code_in(server):
    body = server.messages[-1].message.get_body(("plain",)).get_content()
    return re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)


@pytest.fixture
def command_user(monkeypatch):
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "ops")
    return "command:ops"


# --- the pages ------------------------------------------------------------------------------


def test_creating_on_the_page_records_every_field_and_the_password_only_as_changed(
    admin_client,
):
    admin_client.post(reverse("smtp_accounts:create"), FORM)
    account = SmtpAccount.objects.get(name="Relay")
    [event] = AccountEvent.objects.all()
    assert (event.account, event.action, event.actor, event.actor_ip) == (
        account, "created", "admin", "127.0.0.1"
    )
    assert event.changes["host"] == {"old": None, "new": "smtp.example.com"}
    assert event.changes["port"] == {"old": None, "new": 587}
    assert event.changes["password"] == "changed"
    assert "typed-secret-1" not in trail_text()
    assert account.password_encrypted not in trail_text()


def test_an_edit_records_old_and_new_of_what_changed_only(admin_client, make_account):
    account = make_account(name="Relay", password="old-secret")
    old_token = account.password_encrypted
    edit = {**FORM, "host": "smtp.other.example", "password": "new-secret"}
    admin_client.post(reverse("smtp_accounts:update", args=[account.pk]), edit)
    [event] = AccountEvent.objects.all()
    assert (event.action, event.actor) == ("changed", "admin")
    assert event.changes == {
        "host": {"old": "smtp.example.com", "new": "smtp.other.example"},
        "password": "changed",
    }
    account.refresh_from_db()
    for secret in ("old-secret", "new-secret", old_token, account.password_encrypted):
        assert secret not in trail_text()


def test_saving_without_a_change_records_nothing(admin_client, make_account):
    account = make_account(name="Relay", from_name="CRM")
    unchanged = {**FORM, "password": ""}
    response = admin_client.post(reverse("smtp_accounts:update", args=[account.pk]), unchanged)
    assert response.status_code == 302
    assert entries() == []


def test_a_refused_form_records_nothing(admin_client, make_account):
    account = make_account(name="Relay")
    bad = {**FORM, "port": "70000"}
    response = admin_client.post(reverse("smtp_accounts:update", args=[account.pk]), bad)
    assert response.status_code == 200
    assert entries() == []


def test_deleting_keeps_the_history_under_the_last_name(admin_client):
    admin_client.post(reverse("smtp_accounts:create"), FORM)
    account = SmtpAccount.objects.get()
    rename = {**FORM, "name": "Old relay", "password": ""}
    admin_client.post(reverse("smtp_accounts:update", args=[account.pk]), rename)
    admin_client.post(reverse("smtp_accounts:delete", args=[account.pk]))

    assert not SmtpAccount.objects.exists()
    trail = AccountEvent.objects.order_by("at", "pk")
    assert [(e.action, e.account_id, e.account_name) for e in trail] == [
        ("created", None, "Old relay"), ("changed", None, "Old relay"),
        ("deleted", None, "Old relay"),
    ]
    deleted = trail.last()
    assert deleted.actor == "admin" and deleted.changes["host"]["old"] == "smtp.example.com"
    assert "password" not in deleted.changes


@flow
def test_test_and_confirm_on_the_page_record_who_asked_and_who_confirmed(
    admin_client, smtp_server, smtp_account_for
):
    account = smtp_account_for(smtp_server)
    test_url = reverse("smtp_accounts:test", args=[account.pk])
    admin_client.post(test_url, {"email": "boss@example.com"})
    code = code_in(smtp_server)
    admin_client.post(reverse("smtp_accounts:confirm", args=[account.pk]), {"code": code})

    assert entries() == [("test_requested", "admin"), ("test_confirmed", "admin")]
    requested, confirmed = AccountEvent.objects.order_by("at", "pk")
    assert requested.changes == {"recipient": {"old": None, "new": "boss@example.com"}}
    account.refresh_from_db()
    verified = account.verified_at.isoformat()
    assert confirmed.changes == {"verified_at": {"old": None, "new": verified}}
    assert code not in trail_text()
    test = TestEmail.objects.get()
    assert test.code_hash.split("$")[2] not in trail_text()


@flow
def test_a_test_that_fails_in_process_is_recorded_as_the_system(
    admin_client, smtp_server, smtp_account_for
):
    # Without a broker the task runs inside the admin's request; the failure is still the
    # worker's finding, not the admin's doing.
    account = smtp_account_for(smtp_server, password="wrong-password")
    admin_client.post(reverse("smtp_accounts:test", args=[account.pk]), {"email": "a@example.com"})
    assert entries() == [("test_requested", "admin"), ("test_failed", "system")]
    failed = AccountEvent.objects.get(action="test_failed")
    assert failed.changes["error"]["new"].startswith("The server rejected the login (535")
    assert "wrong-password" not in trail_text().replace("wrong password", "")


# --- Django's admin -------------------------------------------------------------------------


def test_the_admin_add_change_and_delete_each_leave_one_entry(admin_client):
    admin_client.post(reverse("admin:smtp_accounts_smtpaccount_add"), FORM)
    account = SmtpAccount.objects.get()
    change = {**FORM, "from_name": "CRM Team", "password": ""}
    admin_client.post(reverse("admin:smtp_accounts_smtpaccount_change", args=[account.pk]), change)
    admin_client.post(reverse("admin:smtp_accounts_smtpaccount_delete", args=[account.pk]),
                      {"post": "yes"})  # fmt: skip
    assert entries() == [("created", "admin"), ("changed", "admin"), ("deleted", "admin")]
    assert AccountEvent.objects.get(action="changed").changes == {
        "from_name": {"old": "CRM", "new": "CRM Team"}
    }


def test_the_admin_bulk_delete_leaves_one_entry_per_account(admin_client, make_account):
    pks = [make_account(name=name).pk for name in ("A", "B")]
    admin_client.post(reverse("admin:smtp_accounts_smtpaccount_changelist"),
                      {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert not SmtpAccount.objects.exists()
    assert sorted(AccountEvent.objects.values_list("account_name", "action", "actor")) == [
        ("A", "deleted", "admin"), ("B", "deleted", "admin"),
    ]


def test_the_admin_shows_the_trail_read_only(admin_client, make_account):
    make_account(name="Relay")
    page = admin_client.get(reverse("admin:smtp_accounts_accountevent_changelist"))
    assert page.status_code == 200
    assert admin_client.get(reverse("admin:smtp_accounts_accountevent_add")).status_code == 403


# --- the commands ---------------------------------------------------------------------------


INTERNAL = ["--name", "Relay", "--type", "system", "--host", "smtp.example.com", "--port", "587",
            "--user", "crm@example.com", "--email", "crm@example.com", "--password-stdin"]


def test_command_create_update_and_delete_name_the_os_user(db, command_user):
    run("create", *INTERNAL, stdin="piped-secret\n")
    run("update", "Relay", "--port", "465", "--security", "ssl", "--password-stdin",
        stdin="piped-secret-2\n")
    run("update", "Relay", "--inactive")
    run("delete", "Relay", "--yes")
    assert entries() == [("created", command_user), ("changed", command_user),
                         ("changed", command_user), ("deleted", command_user)]
    assert AccountEvent.objects.filter(action="changed").first().changes == {
        "is_active": {"old": True, "new": False}
    }
    assert "piped-secret" not in trail_text()
    assert AccountEvent.objects.filter(actor_ip__isnull=False).count() == 0


@flow
def test_command_test_and_confirm_name_the_os_user(smtp_server, smtp_account_for, command_user):
    account = smtp_account_for(smtp_server, name="Relay")
    run("test", "Relay", "--to", "ops@example.com")
    run("confirm", str(account.pk), code_in(smtp_server))
    assert entries() == [("test_requested", command_user), ("test_confirmed", command_user)]


def test_key_rotation_of_a_signed_in_account_is_one_entry(settings, oauth_server, make_account):
    from smtp_accounts.tests.fixtures.oauth_server import sign_in

    old_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [old_key]
    account = make_account(name="Gmail", password="", auth_method="google")
    sign_in(account)
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    AccountEvent.objects.all().delete()

    call_command("rotate_fernet_keys", stdout=io.StringIO())

    # Two token columns, one change to the account.
    [entry] = AccountEvent.objects.filter(action="key_rotated")
    assert entry.changes == {"tokens": "changed"}
    assert not any(token in trail_text() for token in oauth_server.live_tokens())


def test_without_a_login_name_the_command_is_named_by_its_uid(monkeypatch):
    def no_name():
        raise OSError("No username set in the environment")

    monkeypatch.setattr(audit.getpass, "getuser", no_name)
    assert re.fullmatch(r"command:uid \d+", audit.command_actor())


def test_key_rotation_records_each_account_it_re_encrypted(settings, make_account, command_user):
    old_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [old_key]
    rotated = [make_account(name=f"A{n}", password=f"secret-{n}") for n in range(2)]
    make_account(name="No password", username="", password="")
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    current = make_account(name="Current", password="secret-current")

    call_command("rotate_fernet_keys", "--dry-run", stdout=io.StringIO())
    assert entries(action="key_rotated") == []
    call_command("rotate_fernet_keys", stdout=io.StringIO())
    call_command("rotate_fernet_keys", stdout=io.StringIO())  # nothing left to rotate

    assert sorted(AccountEvent.objects.filter(action="key_rotated")
                  .values_list("account_id", "actor", "changes")) == [
        (account.pk, command_user, {"password": "changed"}) for account in rotated
    ]  # fmt: skip
    assert not AccountEvent.objects.filter(action="key_rotated", account=current).exists()
    for account in SmtpAccount.objects.all():
        assert account.password_encrypted == "" or account.password_encrypted not in trail_text()


# --- the worker -----------------------------------------------------------------------------


@pytest.mark.worker
@flow
def test_a_worker_that_fails_a_test_email_records_the_system(
    smtp_server, smtp_account_for, celery_worker_process
):
    account = smtp_account_for(smtp_server, password="wrong-password")
    with audit.acting_as("admin", ip="192.0.2.7"):
        services.request_test_email(account, to="admin@example.com")
    wait_until(lambda: AccountEvent.objects.filter(action="test_failed").exists(),
               message="the worker to record the failed test")  # fmt: skip
    assert entries() == [("test_requested", "admin"), ("test_failed", "system")]
    assert AccountEvent.objects.get(action="test_failed").actor_ip is None


@pytest.mark.worker
@flow
def test_a_test_email_the_queue_could_not_take_is_one_failed_entry(
    admin_client, smtp_server, smtp_account_for, celery_broker
):
    account = smtp_account_for(smtp_server)
    with celery_broker.unreachable():
        admin_client.post(reverse("smtp_accounts:test", args=[account.pk]),
                          {"email": "a@example.com"})  # fmt: skip
    assert entries() == [("test_requested", "admin"), ("test_failed", "admin")]
    failed = AccountEvent.objects.get(action="test_failed")
    assert failed.changes["error"]["new"].startswith("The mail queue could not be reached")


# --- what other branches wire: sign-in, pause, resume ---------------------------------------


def test_sign_in_records_the_identity_and_the_tokens_only_as_changed(make_account):
    account = make_account(name="Gmail")
    with audit.acting_as("admin", ip="192.0.2.7"):
        event = audit.record_signed_in(account, "crm@gmail.example")
    stored = AccountEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.actor, stored.actor_ip) == ("signed_in", "admin", "192.0.2.7")
    assert stored.changes == {"identity": {"old": None, "new": "crm@gmail.example"},
                              "tokens": "changed"}  # fmt: skip


def test_pause_and_resume_record_until_when_and_why(make_account):
    account = make_account(name="Exchange")
    until = timezone.now() + timedelta(hours=1)
    audit.record_paused(account, until, "554 5.2.0 quota exceeded")
    audit.record_resumed(account, until)
    paused, resumed = AccountEvent.objects.order_by("at", "pk")
    assert (paused.action, paused.actor) == ("paused", "system")
    assert paused.changes == {
        "paused_until": {"old": None, "new": until.isoformat()},
        "pause_reason": {"old": None, "new": "554 5.2.0 quota exceeded"},
    }
    assert (resumed.action, resumed.changes) == (
        "resumed", {"paused_until": {"old": until.isoformat(), "new": None}}
    )


def test_record_refuses_an_unknown_action(make_account):
    with pytest.raises(ValueError, match="Unknown audit action 'renamed'"):
        audit.record(make_account(), "renamed")


def test_an_entry_is_written_with_the_change_or_not_at_all(make_account):
    account = make_account(name="Relay")
    with pytest.raises(RuntimeError), transaction.atomic():
        account.host = "smtp.other.example"
        services.save_account(account, password="x")
        raise RuntimeError("the request failed after the save")
    assert entries() == []


def test_acting_as_restores_the_previous_actor():
    with audit.acting_as("admin", ip="192.0.2.7"):
        with audit.acting_as("command:ops"):
            assert audit.current_actor() == audit.Actor("command:ops")
        assert audit.current_actor() == audit.Actor("admin", "192.0.2.7")
    assert audit.current_actor() == audit.Actor("system")


def test_signing_in_through_the_flow_leaves_one_entry(oauth_server, make_account):
    from smtp_accounts.tests.fixtures.oauth_server import sign_in

    account = make_account(name="Gmail", password="", auth_method="google",
                           username="crm-sender@example.com")
    with audit.acting_as("admin", ip="127.0.0.1"):
        sign_in(account)

    [entry] = AccountEvent.objects.filter(action="signed_in")
    assert (entry.actor, entry.actor_ip) == ("admin", "127.0.0.1")
    assert entry.changes["tokens"] == "changed"
    assert not any(token in trail_text() for token in oauth_server.live_tokens())
