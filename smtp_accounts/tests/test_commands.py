"""`manage.py smtp_accounts`: every subcommand through call_command, one through a subprocess."""

import getpass
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from smtp_accounts.models import SmtpAccount

ACCOUNT_KEYS = {
    "id", "name", "account_type", "provider", "domain", "email", "from_name", "host", "port",
    "username", "security", "is_active", "verified_at", "updated_at", "auth_method", "signed_in",
    "priority", "max_per_minute", "max_per_hour", "max_per_day", "paused_until",
}
MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


class Terminal(io.StringIO):
    """Standard input as if someone sat at a terminal."""

    def isatty(self):
        return True


def run(*args, stdin=None):
    """Run `smtp_accounts *args`; return what it printed on stdout."""
    out = io.StringIO()
    call_command("smtp_accounts", *args, stdout=out, stdin=stdin or io.StringIO())
    return out.getvalue()


def fails(*args, stdin=None):
    """Run `smtp_accounts *args`, which must fail; return the error text."""
    with pytest.raises(CommandError) as info:
        run(*args, stdin=stdin)
    return str(info.value)


INTERNAL = ["--name", "Support", "--type", "customer_service", "--host", "smtp.example.com",
            "--port", "587", "--user", "relay-login", "--email", "support@example.com",
            "--from-name", "Support Team"]


# --- list and show -------------------------------------------------------------------------


def test_list_without_accounts_says_how_to_add_one(db):
    assert "No SMTP accounts yet" in run("list")


def test_list_shows_the_columns_of_the_web_page(make_account):
    # Short enough to fit 100 columns even with a five-digit id (PostgreSQL keeps counting).
    make_account(name="Relay", host="relay.example.com", port=2525)
    lines = run("list").splitlines()
    assert lines[0].split() == ["ID", "Name", "Type", "Host", "Email", "State", "Last",
                                "Update"]
    assert "Needs test" in lines[2]
    assert "Relay" in lines[2] and "relay.example.com:2525" in lines[2]


def test_list_json_is_an_array_of_accounts_without_secrets(make_account):
    make_account(name="B", password="hunter2")
    make_account(name="A", is_active=False)
    output = run("list", "--json")
    accounts = json.loads(output)
    assert [a["name"] for a in accounts] == ["A", "B"]
    assert all(set(a) == ACCOUNT_KEYS for a in accounts)
    assert isinstance(accounts[0]["id"], int) and accounts[0]["port"] == 587
    assert accounts[0]["is_active"] is False and accounts[0]["verified_at"] is None
    # "password" appears only as the value of auth_method, never as a key holding a secret
    assert "hunter2" not in output and '"password":' not in output


def test_show_finds_an_account_by_id_or_name(make_account):
    account = make_account(name="Billing", password="hunter2")
    by_name, by_id = run("show", "Billing"), run("show", str(account.pk))
    assert by_name == by_id
    assert "Account Name: Billing" in by_name and "Password:     stored" in by_name
    assert "hunter2" not in by_name
    assert json.loads(run("show", "Billing", "--json"))["id"] == account.pk


def test_show_names_the_bounce_mailbox_and_its_last_error_but_no_password(make_account):
    account = make_account(name="Relay", bounce_host="imap.example.com",
                           bounce_username="bounces@example.com")
    account.set_bounce_password("imap-Secret-3")
    account.save()
    account.record_bounce_check("The bounce mailbox imap.example.com:993 refused the login.")

    output = run("show", "Relay")

    assert "Bounces:      imap.example.com:993 as bounces@example.com; last read " in output
    assert "failed: The bounce mailbox imap.example.com:993 refused the login." in output
    assert "imap-Secret-3" not in output and "bounce" not in run("show", "Relay", "--json")


def test_an_unknown_account_is_one_line_error(db):
    message = fails("show", "nope")
    assert message == "No SMTP account has the id or name 'nope'."


# --- create and update ---------------------------------------------------------------------


def test_create_reads_the_password_from_stdin_and_never_prints_it(db):
    output = run("create", *INTERNAL, "--password-stdin", stdin=io.StringIO("pa ss\n"))
    account = SmtpAccount.objects.get(name="Support")
    assert account.get_password() == "pa ss"
    assert (account.username, account.email) == ("relay-login", "support@example.com")
    assert account.account_type == "customer_service" and not account.is_verified
    assert f"Created the account 'Support' (id {account.pk}); not verified." in output
    assert "pa ss" not in output


def test_create_external_account_needs_no_password(db):
    data = json.loads(run("create", "--name", "Mailgun", "--provider", "external",
                          "--domain", "MG.Example.com", "--email", "news@mg.example.com",
                          "--json"))
    assert (data["provider"], data["domain"], data["host"]) == ("external", "mg.example.com", "")


def test_create_prints_every_form_error_on_one_line_by_option(db):
    message = fails("create", "--name", "Bad", "--email", "not-an-address", "--port", "seven",
                    "--host", "smtp.example.com", "--type", "newsletters")
    assert "\n" not in message
    assert message.startswith("The account was not saved: ")
    errors = message.removeprefix("The account was not saved: ").split("; ")
    assert "--email: Enter a valid email address." in errors
    assert "--port: Enter a whole number." in errors
    assert any(error.startswith("--type: Select a valid choice.") for error in errors)
    assert not SmtpAccount.objects.exists()


def test_create_without_a_password_and_without_a_terminal_is_refused(db):
    message = fails(*["create", *INTERNAL])
    assert message == (
        "The account was not saved: --password-stdin: Enter the password for this User."
    )


def test_create_asks_for_the_password_on_a_terminal(db, monkeypatch):
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed")
    run("create", *INTERNAL, stdin=Terminal())
    assert prompts == ["Password for relay-login: "]
    assert SmtpAccount.objects.get(name="Support").get_password() == "typed"


def test_password_stdin_refuses_an_empty_line(db):
    assert "read an empty line" in fails("create", *INTERNAL, "--password-stdin")


def test_update_changes_only_the_options_given(make_account):
    account = make_account(name="Old", from_name="CRM", password="hunter2")
    run("update", "Old", "--name", "New", "--from-name", "Sales", "--inactive")
    account.refresh_from_db()
    assert (account.name, account.from_name, account.is_active) == ("New", "Sales", False)
    assert (account.host, account.port, account.get_password()) == ("smtp.example.com", 587,
                                                                    "hunter2")


def test_update_to_a_new_server_needs_the_password_again(make_account):
    account = make_account(name="Relay", password="hunter2")
    message = fails("update", "Relay", "--host", "other.example.com")
    assert message.startswith(
        "The account was not saved: --password-stdin: Type the password again"
    )
    run("update", "Relay", "--host", "other.example.com", "--password-stdin",
        stdin=io.StringIO("new-pass\n"))
    account.refresh_from_db()
    assert (account.host, account.get_password()) == ("other.example.com", "new-pass")


def test_update_unverifies_an_account_whose_connection_changed(make_account):
    from django.utils import timezone

    make_account(name="Relay", verified_at=timezone.now())
    output = run("update", "Relay", "--email", "other@example.com")
    assert "not verified" in output
    assert not SmtpAccount.objects.get(name="Relay").is_verified


# --- delete ----------------------------------------------------------------------------------


def test_delete_with_yes(make_account):
    make_account(name="Gone")
    assert "Deleted the account 'Gone'" in run("delete", "Gone", "--yes")
    assert not SmtpAccount.objects.exists()


def test_delete_without_a_terminal_refuses_unless_yes(make_account):
    make_account(name="Kept")
    assert "Add --yes" in fails("delete", "Kept")
    assert SmtpAccount.objects.filter(name="Kept").exists()


@pytest.mark.parametrize(("answer", "left"), [("yes\n", 0), ("n\n", 1), ("\n", 1)])
def test_delete_asks_on_a_terminal(make_account, answer, left):
    make_account(name="Asked")
    output = run("delete", "Asked", stdin=Terminal(answer))
    assert "Delete the account 'Asked'" in output
    assert SmtpAccount.objects.count() == left


# --- test and confirm ------------------------------------------------------------------------


def mailed_code(server):
    """The code in the last test email the server received."""
    body = server.messages[-1].message.get_body(("plain",)).get_content()
    return re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)


def test_test_sends_a_code_that_confirm_accepts(
    smtp_server, smtp_account_for, transactional_db
):
    account = smtp_account_for(smtp_server, name="Relay")
    output = run("test", "Relay", "--to", "admin@example.com")
    assert "Test email for 'Relay' to admin@example.com: sent." in output
    assert smtp_server.messages[-1].rcpt_tos == ["admin@example.com"]
    code = mailed_code(smtp_server)
    assert code not in output
    assert "Confirmed: the account 'Relay' is verified." in run("confirm", str(account.pk), code)
    account.refresh_from_db()
    assert account.is_verified


def test_a_wrong_code_says_how_many_tries_are_left(
    smtp_server, smtp_account_for, transactional_db
):
    smtp_account_for(smtp_server, name="Relay")
    run("test", "Relay", "--to", "admin@example.com")
    wrong = "000000" if mailed_code(smtp_server) != "000000" else "111111"
    assert fails("confirm", "Relay", wrong) == "That code is not right. 4 tries left."


def test_confirm_before_any_test(make_account):
    make_account(name="Relay")
    assert fails("confirm", "Relay", "123456") == (
        "No test email is waiting for a code. Send a test first."
    )


def test_a_failed_test_email_is_an_error_with_the_reason(
    smtp_server, smtp_account_for, transactional_db
):
    smtp_account_for(smtp_server, name="Relay", password="wrong")
    message = fails("test", "Relay", "--to", "admin@example.com")
    assert message.startswith("The test email to admin@example.com failed: The server "
                              "rejected the login (535")
    assert "wrong" not in message.replace("wrong password", "")


def test_a_second_test_right_away_is_throttled(
    smtp_server, smtp_account_for, transactional_db
):
    smtp_account_for(smtp_server, name="Relay")
    run("test", "Relay", "--to", "admin@example.com")
    message = fails("test", "Relay", "--to", "admin@example.com")
    assert re.fullmatch(r"Wait \d+ seconds? before sending another test email\.", message)


def test_test_refuses_a_bad_address(make_account):
    make_account(name="Relay")
    assert fails("test", "Relay", "--to", "not-an-address") == "Enter a valid email address."


# --- check -----------------------------------------------------------------------------------


def test_check_prints_each_step_with_its_time(smtp_server, smtp_account_for):
    smtp_account_for(smtp_server, name="Relay")
    lines = run("check", "Relay").splitlines()
    assert lines[0] == f"Checking 'Relay' (127.0.0.1:{smtp_server.port})"
    assert [line.split()[:2] for line in lines[1:]] == [
        ["ok", "DNS"], ["ok", "TCP"], ["ok", "TLS"], ["ok", "EHLO"], ["ok", "login"]
    ]
    assert all(" ms  " in line for line in lines[1:])
    assert smtp_server.messages == []


def test_check_stops_at_the_failing_step_and_says_what_to_fix(smtp_server, smtp_account_for):
    smtp_account_for(smtp_server, name="Relay", password="wrong")
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("smtp_accounts", "check", "Relay", stdout=out)
    assert out.getvalue().splitlines()[-1].startswith("FAIL  login")
    assert str(info.value).startswith("'Relay' failed at login: The server rejected the login")


def test_check_logs_in_to_the_bounce_mailbox_too(smtp_server, smtp_account_for, imap_server):
    account = smtp_account_for(smtp_server, name="Relay", bounce_host=imap_server.host,
                               bounce_port=imap_server.port, bounce_username=imap_server.username)
    account.set_bounce_password("not-the-Imap-one")
    account.save()

    message = fails("check", "Relay")

    assert message.startswith("'Relay' failed at bounce mailbox: ")
    assert f"refused the login for {imap_server.username}" in message
    assert "not-the-Imap-one" not in message and "\n" not in message


def test_check_all_prints_one_line_per_account(
    smtp_server, smtp_untrusted_server, smtp_account_for, mailgun_server, mailgun_account_for
):
    smtp_account_for(smtp_server, name="A good relay")
    smtp_account_for(smtp_untrusted_server, name="B untrusted")
    mailgun_account_for(mailgun_server, name="C mailgun")
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"^1 of 3 accounts failed the check\.$"):
        call_command("smtp_accounts", "check", "--all", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "ok    A good relay: 5 steps passed"
    assert lines[1].startswith("FAIL  B untrusted: TLS: The certificate of 127.0.0.1")
    assert lines[2] == "ok    C mailgun: 3 steps passed"


def test_check_json(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server, name="News")
    result = json.loads(run("check", "News", "--json"))
    assert (result["id"], result["name"], result["ok"]) == (account.pk, "News", True)
    assert [step["name"] for step in result["steps"]] == ["API key", "Mailgun API", "domain"]
    assert set(result["steps"][0]) == {"name", "ok", "detail", "seconds"}


def test_check_needs_an_account_or_all(db):
    assert "one of the arguments account --all is required" in fails("check")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "the following arguments are required: SUBCOMMAND"),
        (("bogus",), "argument SUBCOMMAND: invalid choice (choose from 'list'"),
        (("--bogus", "list"), "unrecognized arguments (not shown)"),
    ],
)
def test_usage_errors_raise_command_error_in_call_command(db, args, error):
    assert fails(*args).startswith(f"Error: {error}")


# --- send ------------------------------------------------------------------------------------


@pytest.fixture
def ready_relay(smtp_server, smtp_account_for):
    from django.utils import timezone

    return smtp_account_for(smtp_server, name="System relay", verified_at=timezone.now())


def test_send_queues_mail_and_prints_its_id_and_state(
    smtp_server, ready_relay, tmp_path, transactional_db
):
    body = tmp_path / "body.txt"
    body.write_text("Quarterly numbers attached.\n")
    output = run("send", "--type", "system", "--to", "boss@example.com",
                 "--subject", "Numbers", "--body-file", str(body))
    message = ready_relay.messages.get()
    assert output == f"Message {message.pk} through 'System relay': sent\n"
    [received] = smtp_server.messages
    assert received.message["Subject"] == "Numbers" and received.rcpt_tos == ["boss@example.com"]
    assert "Quarterly numbers attached." in received.message.get_content()


def test_send_reads_the_body_from_stdin(smtp_server, ready_relay,
                                        transactional_db):
    run("send", "--type", "system", "--to", "a@example.com", "--to", "b@example.com",
        "--subject", "Hi", stdin=io.StringIO("From a pipe.\n"))
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["a@example.com", "b@example.com"]
    assert received.message.get_content().strip() == "From a pipe."


def test_send_on_a_terminal_needs_a_body_file(ready_relay):
    message = fails("send", "--type", "system", "--to", "a@example.com", "--subject", "Hi",
                    stdin=Terminal())
    assert message == "Give the body with --body-file FILE or pipe it on stdin."


def test_send_without_a_ready_account(make_account):
    make_account(account_type="campaigns")  # active but not verified
    message = fails("send", "--type", "campaigns", "--to", "a@example.com", "--subject", "Hi",
                    stdin=io.StringIO("x"))
    assert message.startswith("There is no active and verified Campaigns account")
    assert "\n" not in message


def test_send_refuses_a_bad_address(ready_relay):
    message = fails("send", "--type", "system", "--to", "nobody", "--subject", "Hi",
                    stdin=io.StringIO("x"))
    assert message == "'nobody' is not a valid email address."


# --- a real manage.py ------------------------------------------------------------------------


def manage(tmp_path, *args, stdin="", **env_vars):
    """Run manage.py in a subprocess on its own SQLite file in `tmp_path`."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "FERNET_KEYS": ",".join(django_settings.FERNET_KEYS),
        **env_vars,
    }
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args], input=stdin, env=env, cwd=tmp_path, check=False,
        capture_output=True, text=True, timeout=120,
    )


def test_the_real_command_line(tmp_path):
    assert manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    created = manage(tmp_path, "smtp_accounts", "create", *INTERNAL, "--password-stdin",
                     "--json", stdin="from-a-pipe\n")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["username"] == "relay-login"
    listed = manage(tmp_path, "smtp_accounts", "list", "--json")
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Support"]
    assert "from-a-pipe" not in created.stdout + listed.stdout

    missing = manage(tmp_path, "smtp_accounts", "show", "Nope")
    assert missing.returncode == 1
    assert missing.stderr == "CommandError: No SMTP account has the id or name 'Nope'.\n"
    refused = manage(tmp_path, "smtp_accounts", "delete", "Support")
    assert refused.returncode == 1 and "Add --yes" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    usage = manage(tmp_path, "smtp_accounts", "test", "Support")
    assert usage.returncode == 2
    assert usage.stderr == (
        "manage.py smtp_accounts test: error: the following arguments are required: --to "
        "(see --help)\n"
    )
    assert manage(tmp_path, "smtp_accounts", "delete", "Support", "--yes").returncode == 0


def test_startup_without_fernet_keys_prints_only_how_to_fix_it(tmp_path):
    result = manage(tmp_path, "smtp_accounts", "list", FERNET_KEYS="", DJANGO_DEBUG="false")
    line = one_line_error(result)
    assert result.returncode == 1
    assert line.startswith("manage.py: error: FERNET_KEYS is not set.")
    assert "Fernet.generate_key()" in line


def one_line_error(result):
    """The only line a failed manage.py run wrote on stderr; fails on a traceback or usage."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("bogus",), "argument SUBCOMMAND: invalid choice (choose from 'list', "),
        (("--bogus", "list"), "unrecognized arguments (not shown) (see --help)"),
        ((), "the following arguments are required: SUBCOMMAND (see --help)"),
    ],
    ids=["unknown subcommand", "unknown option", "no subcommand"],
)
def test_the_real_command_line_gives_usage_errors_in_one_line(tmp_path, args, error):
    result = manage(tmp_path, "smtp_accounts", *args)
    line = one_line_error(result)
    assert result.returncode == 2
    assert line.startswith(f"manage.py smtp_accounts: error: {error}")
    assert line.endswith(" (see --help)")


def test_the_real_command_line_gives_form_errors_in_one_line(tmp_path):
    assert manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    created = manage(tmp_path, "smtp_accounts", "create", "--name", "Relay",
                     "--host", "https://smtp.example.com", "--port", "seven",
                     "--user", "relay-login", "--email", "crm@example.com", "--password-stdin",
                     stdin="from-a-pipe\n")
    assert created.returncode == 1 and created.stdout == ""
    assert one_line_error(created) == (
        "CommandError: The account was not saved: --host: Enter only the host name, without a "
        "scheme like smtp:// or https://.; --port: Enter a whole number."
    )
    assert "from-a-pipe" not in created.stderr


def test_an_abbreviated_option_is_refused_and_no_argument_is_echoed(tmp_path):
    result = manage(tmp_path, "smtp_accounts", "create", "--name", "Relay", "--password",
                    "hunter2")
    line = one_line_error(result)
    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout
    assert "unrecognized arguments" in line
    choice = manage(tmp_path, "smtp_accounts", "hunter2")
    assert "hunter2" not in choice.stderr and "invalid choice" in choice.stderr
    rotate = manage(tmp_path, "rotate_fernet_keys", "--dry", "hunter2")
    assert rotate.returncode == 2 and "hunter2" not in rotate.stderr


def test_list_fits_100_columns_and_show_has_the_full_name(make_account):
    make_account(name="N" * 100, host="relay-" + "h" * 60 + ".example.com",
                 email="someone." + "e" * 60 + "@example.com")
    lines = run("list").splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "…" in lines[2]
    assert "N" * 100 in run("show", "N" * 100)


def test_show_gives_the_time_of_the_latest_test(make_account):
    from django.utils import timezone

    from smtp_accounts.models import TestEmail

    account = make_account(name="Relay")
    test = TestEmail.objects.create(account=account, recipient="me@example.com", status="failed",
                                    error="Timed out.")
    moment = timezone.localtime(test.created_at).strftime("%Y-%m-%d %H:%M")
    assert f"Latest test:  {moment} to me@example.com: failed (Timed out.)" in run(
        "show", "Relay")


def test_library_log_lines_are_quiet_at_the_default_verbosity(make_account, caplog):
    import logging

    from smtp_accounts.management.base import SafeCommand

    class Noisy(SafeCommand):
        def handle(self, *args, **options):
            logging.getLogger("kombu.connection").warning("No hostname was supplied.")

    with caplog.at_level(logging.WARNING):
        Noisy().run_from_argv(["manage.py", "noisy"])
        assert "No hostname" not in caplog.text
        Noisy().run_from_argv(["manage.py", "noisy", "--verbosity", "2"])
        assert "No hostname" in caplog.text


def test_update_asks_for_the_password_only_when_the_server_changed(make_account, monkeypatch):
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed")
    account = make_account(name="Relay", password="hunter2")
    run("update", "Relay", "--from-name", "Sales", stdin=Terminal())
    assert prompts == []
    run("update", "Relay", "--port", "2525", stdin=Terminal())
    account.refresh_from_db()
    assert prompts == ["Password for crm@example.com: "]
    assert (account.port, account.get_password()) == (2525, "typed")


def test_a_send_that_fails_for_good_is_an_error(smtp_server, ready_relay, transactional_db):
    smtp_server.reject_recipient("gone@example.com", "550 5.1.1 No such user")
    message = fails("send", "--type", "system", "--to", "gone@example.com", "--subject", "Hi",
                    stdin=io.StringIO("x"))
    pk = ready_relay.messages.get().pk
    assert message == (f"Message {pk} through 'System relay': failed: The server refused the "
                       "recipients: gone@example.com (550 5.1.1 No such user).")


def test_the_real_command_line_checks_a_server(tmp_path, smtp_server):
    server_env = {"SMTP_ACCOUNTS_ALLOWED_NETWORKS": "127.0.0.0/8",
                  "SMTP_ACCOUNTS_CA_FILE": django_settings.SMTP_ACCOUNTS_CA_FILE}
    assert manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    created = manage(tmp_path, "smtp_accounts", "create", "--name", "Relay", "--host",
                     "127.0.0.1", "--port", str(smtp_server.port), "--user",
                     smtp_server.username, "--email", "crm@example.com", "--password-stdin",
                     stdin=smtp_server.password + "\n")
    assert created.returncode == 0, created.stderr
    good = manage(tmp_path, "smtp_accounts", "check", "Relay", **server_env)
    assert good.returncode == 0, good.stderr
    assert [line.split()[0] for line in good.stdout.splitlines()[1:]] == ["ok"] * 5
    manage(tmp_path, "smtp_accounts", "update", "Relay", "--password-stdin", stdin="wrong\n")
    bad = manage(tmp_path, "smtp_accounts", "check", "Relay", **server_env)
    assert bad.returncode == 1
    [error] = bad.stderr.splitlines()
    assert error.startswith("CommandError: 'Relay' failed at login: The server rejected")
    assert smtp_server.password not in good.stdout + bad.stdout + bad.stderr


@pytest.mark.django_db
def test_sign_in_google_creates_an_account_that_waits_for_its_sign_in(oauth_server):
    output = run("create", *INTERNAL, "--sign-in", "google")
    assert "Sign it in on its page: Edit > Sign in with Google." in output
    shown = json.loads(run("show", "Support", "--json"))
    assert shown["auth_method"] == "google" and shown["signed_in"] is False
    assert "Signed in:" in run("show", "Support")


@pytest.mark.django_db
def test_sign_in_of_an_unconfigured_provider_names_the_option(oauth_server, settings):
    settings.SMTP_ACCOUNTS_MICROSOFT_CLIENT_ID = ""
    error = fails("create", *INTERNAL, "--sign-in", "microsoft")
    assert error.startswith("The account was not saved: --sign-in: That Sign-in is not set up")


def test_show_and_list_never_print_a_token(oauth_server, make_account):
    from smtp_accounts.tests.fixtures.oauth_server import sign_in

    sign_in(make_account(name="Gmail", password="", auth_method="google",
                         username="crm-sender@example.com"))
    printed = run("show", "Gmail") + run("show", "Gmail", "--json") + run("list", "--json")
    assert '"signed_in": true' in printed and "crm-sender@example.com" in printed
    assert not any(token in printed for token in oauth_server.live_tokens())


# --- history ---------------------------------------------------------------------------------

EVENT_KEYS = {"at", "actor", "action", "changes"}


def test_history_lists_who_changed_what_newest_first(make_account):
    account = make_account(name="Relay", password="stored-secret")
    run("update", "Relay", "--port", "465", "--security", "ssl", "--password-stdin",
        stdin=io.StringIO("new-secret\n"))
    run("update", "Relay", "--from-name", "CRM Team")
    output = run("history", "Relay")
    lines = output.splitlines()
    assert lines[0].split() == ["When", "Who", "What", "Changes"]
    assert "Changed" in lines[2] and "From Name: CRM → CRM Team" in lines[2]
    assert "Port: 587 → 465" in lines[3] and "Password: changed" in lines[3]
    assert run("history", str(account.pk)) == output
    account.refresh_from_db()
    for secret in ("stored-secret", "new-secret", account.password_encrypted):
        assert secret not in output


def test_history_json_is_the_contracts_array(make_account):
    make_account(name="Relay", password="stored-secret")
    run("update", "Relay", "--inactive")
    output = run("history", "Relay", "--json")
    [event] = json.loads(output)
    assert set(event) == EVENT_KEYS
    assert event["action"] == "changed" and event["actor"].startswith("command:")
    assert event["changes"] == {"is_active": {"old": True, "new": False}}
    assert datetime.fromisoformat(event["at"]).tzinfo is not None


def test_history_of_a_deleted_account_by_its_name(make_account):
    make_account(name="Relay")
    run("update", "Relay", "--host", "smtp.other.example", "--password-stdin",
        stdin=io.StringIO("new-secret\n"))
    run("delete", "Relay", "--yes")
    events = json.loads(run("history", "Relay", "--json"))
    assert [event["action"] for event in events] == ["deleted", "changed"]
    assert "new-secret" not in json.dumps(events)


def test_history_of_an_account_nobody_changed_yet(make_account):
    make_account(name="Relay")  # made directly in the database, as before the trail existed
    assert run("history", "Relay") == "No changes to 'Relay' have been recorded yet.\n"
    assert json.loads(run("history", "Relay", "--json")) == []


def test_history_of_an_unknown_account_is_a_one_line_error(tmp_path):
    assert manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    result = manage(tmp_path, "smtp_accounts", "history", "Nope", "--json")
    assert one_line_error(result) == (
        "CommandError: No SMTP account, living or deleted, has the id or name 'Nope'."
    )
    assert result.returncode == 1 and result.stdout == ""


def test_the_real_command_line_records_the_os_user(tmp_path):
    assert manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    created = manage(tmp_path, "smtp_accounts", "create", *INTERNAL, "--password-stdin",
                     stdin="from-a-pipe\n")
    assert created.returncode == 0, created.stderr
    history = manage(tmp_path, "smtp_accounts", "history", "Support", "--json")
    [event] = json.loads(history.stdout)
    assert (event["action"], event["actor"]) == ("created", f"command:{getpass.getuser()}")
    assert event["changes"]["password"] == "changed"
    assert "from-a-pipe" not in history.stdout


def test_create_and_update_take_priority_and_limits(make_account):
    account = make_account(name="Desk")
    out = json.loads(run("update", "Desk", "--priority", "2", "--max-per-minute", "30",
                         "--max-per-day", "10000", "--json"))
    assert (out["priority"], out["max_per_minute"], out["max_per_hour"], out["max_per_day"]) == (
        2, 30, None, 10000)
    assert out["paused_until"] is None
    run("update", "Desk", "--max-per-minute", "0")  # 0 clears a limit
    account.refresh_from_db()
    assert (account.priority, account.max_per_minute, account.max_per_day) == (2, None, 10000)
    assert "Limits:       10000 a day" in run("show", "Desk")
    # Not in the JSON, whose keys are a contract: `show` prints it with the limits.
    assert "max_connections" not in run("update", "Desk", "--max-connections", "3", "--json")
    assert "Limits:       10000 a day, 3 connections at once" in run("show", "Desk")


@pytest.mark.parametrize("args", [("--priority", "-1"), ("--max-per-day", "lots")])
def test_a_bad_priority_or_limit_is_a_one_line_error(make_account, args):
    make_account(name="Desk", max_per_day=500)
    with pytest.raises(CommandError, match="whole number"):
        run("update", "Desk", *args)
    assert SmtpAccount.objects.get(name="Desk").max_per_day == 500
