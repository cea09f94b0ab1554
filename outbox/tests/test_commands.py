"""`manage.py mail_log`: the contract's JSON shapes and one-line errors, through real
manage.py subprocesses, plus the subcommands' behaviour through call_command."""

import io
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from outbox.models import OutboundMessage
from outbox.services import suppressions

SUPPRESSION_KEYS = {"email", "reason", "note", "created_at", "message"}
MESSAGE_KEYS = {"id", "account", "account_type", "from_email", "to", "subject", "status",
                "attempts", "last_error", "created_at", "sent_at"}  # fmt: skip
HISTORY_KEYS = {"at", "account", "outcome", "code", "reason"}
MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"
REFUSED = {"outcome": "permanent", "code": 550, "reason": "5.1.1 No such user"}


def run(*args):
    """Run `mail_log *args`; return what it printed on stdout."""
    out = io.StringIO()
    call_command("mail_log", *args, stdout=out)
    return out.getvalue()


def fails(*args):
    with pytest.raises(CommandError) as info:
        run(*args)
    return str(info.value)


@pytest.fixture
def relay(make_account):
    return make_account(name="Relay", verified_at=timezone.now())


def test_list_prints_the_pages_columns_newest_first(relay, make_message):
    make_message(relay, subject="First")
    make_message(relay, status="failed", subject="Second", to=["bob@example.org"])
    lines = run("list").splitlines()
    assert lines[0].split() == ["ID", "Date", "Account", "Type", "To", "Subject", "Status",
                                "Attempts"]  # fmt: skip
    assert "Second" in lines[2] and "bob@example.org" in lines[2] and "failed" in lines[2]
    assert "First" in lines[3]
    assert run("list", "--status", "queued") == "No messages match.\n"


def test_list_filters_and_limits(relay, make_account, make_message):
    other = make_account(name="Other", account_type="campaigns")
    mine = [make_message(relay, status="failed") for _ in range(3)]
    make_message(other, status="failed")
    listed = json.loads(run("list", "--account", "Relay", "--status", "failed", "--json"))
    assert [m["id"] for m in listed] == [m.pk for m in reversed(mine)]
    assert len(json.loads(run("list", "--limit", "2", "--json"))) == 2
    assert [m["account"] for m in json.loads(run("list", "--type", "campaigns", "--json"))] == [
        "Other"
    ]
    assert fails("list", "--account", "Nope") == "No SMTP account has the id or name 'Nope'."


def test_show_prints_the_history_and_never_the_body(relay, make_message):
    message = make_message(relay, status="failed", last_error="550 5.1.1 No such user",
                           history=[{"outcome": "temporary", "code": 421, "reason": "Busy"},
                                    REFUSED])  # fmt: skip
    text = run("show", str(message.pk))
    assert "Message-ID:" in text and "@example.com>" in text
    assert "Last error: 550 5.1.1 No such user" in text
    assert text.index("temporary 421 Busy") < text.index("permanent 550 5.1.1 No such user")
    assert "secret body" not in text
    assert fails("show", "424242") == "No message has the id '424242'."
    assert fails("show", "abc") == "No message has the id 'abc'."


def test_retry_ids_and_failed(relay, make_message, django_capture_on_commit_callbacks):
    failed = make_message(relay, status="failed", history=[REFUSED])
    sent = make_message(relay)
    with django_capture_on_commit_callbacks():  # queued again; delivery is not run here
        assert run("retry", str(failed.pk)) == f"Message {failed.pk} queued again.\n"
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.history.count()) == ("queued", 0, 1)
    error = fails("retry", str(sent.pk))
    assert error == f"Only failed messages are retried; not: {sent.pk} (sent)."
    OutboundMessage.objects.filter(pk=failed.pk).update(status="failed")
    with django_capture_on_commit_callbacks():
        assert run("retry", "--failed", "--account", "Relay") == (
            "1 failed message of 'Relay' queued again.\n"
        )
        assert run("retry", "--failed") == "0 failed messages queued again.\n"
    assert fails("retry") == "Give message ids, or --failed (with --account for one account)."
    assert fails("retry", "1", "--account", "Relay") == "--account goes with --failed."


def test_prune_dry_run_changes_nothing(relay, make_message):
    old = make_message(relay)
    make_message(relay, status="queued")  # never pruned: still on its way
    recent = make_message(relay, status="failed")
    OutboundMessage.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert run("prune", "--older-than", "30", "--dry-run") == (
        "Would remove 1 sent or failed message created more than 30 days ago, with their history.\n"
    )
    assert OutboundMessage.objects.count() == 3
    assert run("prune", "--older-than", "30").startswith("Removed 1 sent or failed message ")
    assert run("prune", "--older-than", "0").startswith("Removed 1 ")
    assert list(OutboundMessage.objects.values_list("status", flat=True)) == ["queued"]
    assert not OutboundMessage.objects.filter(pk=recent.pk).exists()


def test_suppressions_add_list_and_remove(relay, make_message):
    assert run("suppressions", "list") == "No address is suppressed.\n"
    assert run("suppressions", "add", "Ann@Example.org", "--reason", "asked by phone") == (
        "ann@example.org suppressed: the CRM sends it nothing.\n"
    )
    message = make_message(relay, to=["gone@example.org"])
    suppressions.suppress("gone@example.org", "bounce", note="550 5.1.1", message=message)
    lines = run("suppressions", "list").splitlines()
    assert lines[0].split() == ["Email", "Reason", "Since", "Message", "Note"]
    assert lines[2].split()[:2] == ["gone@example.org", "bounce"] and str(message.pk) in lines[2]
    assert "asked by phone" in lines[3]
    again = run("suppressions", "add", "ANN@example.org", "--reason", "twice")
    assert again.startswith("ann@example.org is on the suppression list since ")
    assert again.endswith("(an admin added it); nothing changed.\n")
    assert run("suppressions", "remove", "ann@EXAMPLE.org") == (
        "ann@example.org is off the suppression list: mail goes to it again.\n"
    )
    assert [s["email"] for s in json.loads(run("suppressions", "list", "--json"))] == [
        "gone@example.org"
    ]


def test_fetch_bounces_without_mailboxes_says_so(relay):
    assert run("fetch_bounces") == "No account has a bounce mailbox.\n"
    assert fails("fetch_bounces", "Relay") == "The account 'Relay' has no bounce mailbox."


# --- a real manage.py ------------------------------------------------------------------------

SEED = """
from django.utils import timezone
from outbox.models import Attempt, OutboundMessage
from smtp_accounts.models import SmtpAccount
account = SmtpAccount.objects.create(name="Relay", account_type="system", email="crm@example.com",
    host="smtp.example.com", port=587, verified_at=timezone.now())
sent = OutboundMessage.objects.create(account=account, account_type="system",
    from_email="crm@example.com", to=["a@example.org"], subject="Welcome", status="sent",
    attempts=1, sent_at=timezone.now(), body_text="secret body")
Attempt.objects.create(message=sent, account=account, account_name="Relay", outcome="sent",
    code=250, reason="2.0.0 Ok: queued")
failed = OutboundMessage.objects.create(account=account, account_type="system",
    from_email="crm@example.com", to=["gone@example.org", "b@example.org"], subject="Reset",
    status="failed", attempts=1, last_error="550 5.1.1 No such user", body_text="secret body")
Attempt.objects.create(message=failed, account=account, account_name="Relay",
    outcome="permanent", code=550, reason="5.1.1 No such user")
print(sent.pk, failed.pk)
"""


def manage(tmp_path, *args):
    """Run manage.py in a subprocess on its own SQLite file in `tmp_path`."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "FERNET_KEYS": ",".join(django_settings.FERNET_KEYS),
    }
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args], env=env, cwd=tmp_path, check=False,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def _migrated(tmp_path_factory):
    """One migrated SQLite file per module; each test copies it (migrating takes a second)."""
    folder = tmp_path_factory.mktemp("mail-log-cli")
    assert manage(folder, "migrate", "--verbosity", "0").returncode == 0
    return folder / "cli.sqlite3"


@pytest.fixture
def migrated(_migrated, tmp_path):
    shutil.copy(_migrated, tmp_path / "cli.sqlite3")
    return tmp_path


@pytest.fixture
def seeded(migrated, tmp_path):
    """A migrated SQLite file with one sent and one failed message; returns their ids."""
    seeded = manage(tmp_path, "shell", "--no-imports", "--command", SEED)
    assert seeded.returncode == 0, seeded.stderr
    return [int(pk) for pk in seeded.stdout.split()]


def one_line_error(result):
    """The only line a failed run wrote on stderr; fails on a traceback or a usage text."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line


def test_the_real_command_line_prints_the_contracts_json(tmp_path, seeded):
    sent_id, failed_id = seeded
    listed = manage(tmp_path, "mail_log", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    messages = json.loads(listed.stdout)
    assert [m["id"] for m in messages] == [failed_id, sent_id]
    for message in messages:
        assert set(message) == MESSAGE_KEYS
        assert isinstance(message["id"], int) and isinstance(message["attempts"], int)
        assert isinstance(message["to"], list)
    failed = messages[0]
    assert failed["to"] == ["gone@example.org", "b@example.org"]
    assert (failed["account"], failed["status"], failed["sent_at"]) == ("Relay", "failed", None)
    assert failed["last_error"] == "550 5.1.1 No such user"
    assert timezone.datetime.fromisoformat(failed["created_at"]).tzinfo is not None
    assert timezone.datetime.fromisoformat(messages[1]["sent_at"]).tzinfo is not None

    shown = json.loads(manage(tmp_path, "mail_log", "show", str(failed_id), "--json").stdout)
    assert set(shown) == MESSAGE_KEYS | {"history"}
    [attempt] = shown["history"]
    assert set(attempt) == HISTORY_KEYS
    assert (attempt["account"], attempt["outcome"], attempt["code"]) == ("Relay", "permanent", 550)
    assert attempt["reason"] == "5.1.1 No such user"
    assert "secret body" not in listed.stdout + json.dumps(shown)


def test_the_real_command_line_retries_and_prunes(tmp_path, seeded):
    sent_id, failed_id = seeded
    dry = manage(tmp_path, "mail_log", "prune", "--older-than", "0", "--dry-run")
    assert dry.stdout.startswith("Would remove 2 sent or failed messages"), dry.stderr
    # No broker: Retry delivers in the process, to smtp.example.com, which is not allowed.
    retried = manage(tmp_path, "mail_log", "retry", str(failed_id))
    assert retried.stdout == f"Message {failed_id} queued again.\n", retried.stderr
    history = json.loads(manage(tmp_path, "mail_log", "show", str(failed_id), "--json").stdout)
    # The earlier attempt is kept; the new one failed: that host is not allowed here.
    assert [a["outcome"] for a in history["history"]] == ["permanent", "configuration"]
    assert manage(tmp_path, "mail_log", "prune", "--older-than", "0").returncode == 0
    empty = manage(tmp_path, "mail_log", "list", "--status", "sent", "--json")
    assert json.loads(empty.stdout) == []


def test_the_real_command_line_prints_suppressions_as_json(tmp_path, seeded):
    sent_id, failed_id = seeded
    added = manage(tmp_path, "mail_log", "suppressions", "add", "b@example.org", "--reason",
                   "Left the company")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = manage(tmp_path, "mail_log", "suppressions", "list", "--json")
    [suppression] = json.loads(listed.stdout)
    assert set(suppression) == SUPPRESSION_KEYS
    assert suppression["email"] == "b@example.org" and suppression["reason"] == "manual"
    assert suppression["note"] == "Left the company" and suppression["message"] is None
    assert timezone.datetime.fromisoformat(suppression["created_at"]).tzinfo is not None
    removed = manage(tmp_path, "mail_log", "suppressions", "remove", "b@example.org")
    assert removed.returncode == 0 and removed.stderr == ""
    assert json.loads(manage(tmp_path, "mail_log", "suppressions", "list", "--json").stdout) == []


MAILBOX = """
from smtp_accounts.models import SmtpAccount
account = SmtpAccount(name="Inbox relay", account_type="system", email="crm@example.com",
    host="smtp.example.com", port=587, bounce_host="127.0.0.1", bounce_port=9,
    bounce_username="bounces@example.com")
account.set_bounce_password("Imap-Secret-77")
account.save()
"""


def test_the_real_command_line_says_in_one_line_why_a_mailbox_cannot_be_read(
    migrated, tmp_path
):
    seeded = manage(tmp_path, "shell", "--no-imports", "--command", MAILBOX)
    assert seeded.returncode == 0, seeded.stderr

    result = manage(tmp_path, "mail_log", "fetch_bounces")

    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    # netguard's own log line (a refused address is a security event) may precede it.
    [line] = [line for line in result.stderr.splitlines() if "netguard" not in line]
    assert line.startswith("CommandError: Inbox relay: ") and "loopback" in line
    assert "Imap-Secret-77" not in result.stderr
    shown = manage(tmp_path, "smtp_accounts", "show", "Inbox relay")
    assert "last read" in shown.stdout and "loopback" in shown.stdout  # kept on the account


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (("show", "999"), 1, "CommandError: No message has the id '999'."),
        (("list", "--account", "Nope"), 1,
         "CommandError: No SMTP account has the id or name 'Nope'."),
        (("list", "--status", "lost"), 2, "manage.py mail_log list: error: argument --status: "
         "invalid choice (choose from 'queued', 'sending', 'sent', 'failed') (see --help)"),
        (("list", "--limit", "0"), 2,
         "manage.py mail_log list: error: argument --limit: invalid positive value "
         "(see --help)"),
        (("prune",), 2, "manage.py mail_log prune: error: the following arguments are required: "
         "--older-than (see --help)"),
        (("prune", "--older-than", "-1"), 2, "manage.py mail_log prune: error: argument "
         "--older-than: invalid days value (see --help)"),
        (("retry",), 1, "CommandError: Give message ids, or --failed (with --account for one "
         "account)."),
        (("suppressions", "add", "not-an-address"), 1,
         "CommandError: 'not-an-address' is not a valid email address."),
        (("suppressions", "remove", "ann@example.org"), 1,
         "CommandError: 'ann@example.org' is not on the suppression list."),
        (("suppressions", "purge"), 2, "manage.py mail_log suppressions: error: argument "
         "ACTION: invalid choice (choose from 'list', 'add', 'remove') (see --help)"),
        (("fetch_bounces", "Nope"), 1, "CommandError: No SMTP account has the id or name 'Nope'."),
        (("bogus",), 2, "manage.py mail_log: error: argument SUBCOMMAND: invalid choice "
         "(choose from 'list', 'show', 'retry', 'prune', 'suppressions', 'fetch_bounces') (see "
         "--help)"),
    ],
    ids=["no such message", "no such account", "bad status", "bad limit", "no age",
         "negative age", "nothing to retry", "bad address", "not suppressed", "bad action",
         "no such account to fetch", "bogus"],
)  # fmt: skip
def test_the_real_command_line_errors_are_one_line(migrated, tmp_path, args, code, error):
    result = manage(tmp_path, "mail_log", *args)
    assert one_line_error(result) == error
    assert result.returncode == code
