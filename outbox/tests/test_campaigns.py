"""`smtp_accounts send --to-list FILE`: a list queued in one transaction, all or nothing."""

import io
import logging

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from outbox import services
from outbox.models import OutboundMessage
from smtp_accounts.services import NoReadyAccount

Status = OutboundMessage.Status


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def send_to_list(path, *extra, stderr=None):
    """Run `smtp_accounts send --to-list path`; return what it printed on stdout."""
    out = io.StringIO()
    call_command("smtp_accounts", "send", "--type", "campaigns", "--to-list", str(path),
                 "--subject", "Spring news", *extra, stdout=out, stderr=stderr or io.StringIO(),
                 stdin=io.StringIO("Hello from the CRM"))  # fmt: skip
    return out.getvalue()


def fails(path, *extra):
    with pytest.raises(CommandError) as info:
        send_to_list(path, *extra)
    return str(info.value)


@pytest.fixture
def campaigns_relay(ready):
    return ready("campaigns")


@pytest.fixture
def address_list(tmp_path):
    def write(text):
        path = tmp_path / "list.txt"
        path.write_text(text)
        return path

    return write


def test_a_list_queues_one_message_per_address_skipping_blanks_comments_and_duplicates(
    campaigns_relay, address_list
):
    path = address_list("# spring campaign\nann@example.com\n\n  bob@example.com  \n"
                        "Ann@Example.com\n#carl@example.com\ncy@example.com\n")  # fmt: skip

    output = send_to_list(path)

    assert output == f"Queued 3 messages to the addresses in {path}.\n"
    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [row.to for row in rows] == [["ann@example.com"], ["bob@example.com"],
                                        ["cy@example.com"]]  # fmt: skip
    assert {(row.subject, row.body_text, row.status, row.account_id) for row in rows} == {
        ("Spring news", "Hello from the CRM", Status.QUEUED, campaigns_relay.pk)}
    assert len({row.idempotency_key for row in rows}) == 3  # and so their Message-IDs


def test_a_bad_address_names_its_line_and_nothing_is_queued(campaigns_relay, address_list):
    path = address_list("ann@example.com\n# ok\n\nnot-an-address\nbob@example.com\n")

    error = fails(path)

    assert error == (f"{path}: Line 4 is not a valid email address; fix it or remove it, "
                     "then send again. Nothing was queued.")  # fmt: skip
    assert not OutboundMessage.objects.exists()


def test_a_list_without_an_address_is_an_error(campaigns_relay, address_list):
    path = address_list("# only a comment\n\n")
    assert fails(path) == f"{path} has no address (one a line); nothing was queued."


def test_nothing_is_queued_without_a_ready_account(make_account, address_list):
    make_account(account_type="campaigns")  # active, not verified
    error = fails(address_list("ann@example.com\n"))
    assert error.startswith("There is no active and verified Campaigns account")
    assert error.endswith("Nothing was queued.") and "\n" not in error
    assert not OutboundMessage.objects.exists()


def test_to_and_to_list_exclude_each_other(campaigns_relay, address_list):
    path = address_list("ann@example.com\n")
    assert "argument --to: not allowed with argument --to-list" in fails(
        path, "--to", "bob@example.com")  # fmt: skip
    with pytest.raises(CommandError, match="one of the arguments --to --to-list is required"):
        call_command("smtp_accounts", "send", "--type", "campaigns", "--subject", "S",
                     stdin=io.StringIO("x"))  # fmt: skip
    assert not OutboundMessage.objects.exists()


def test_a_progress_bar_on_a_terminal_only(campaigns_relay, address_list):
    path = address_list("".join(f"reader{n}@example.com\n" for n in range(2500)))
    terminal, pipe = Terminal(), io.StringIO()

    send_to_list(path, stderr=terminal)
    send_to_list(path, stderr=pipe)

    assert terminal.getvalue().endswith("\rQueuing [" + "#" * 30 + "] 2,500/2,500\n")
    assert "] 1,000/2,500" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_a_list_through_mailgun_is_one_transaction_and_one_call(
    mailgun_server, mailgun_account_for, address_list, django_capture_on_commit_callbacks
):
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    path = address_list("".join(f"reader{n}@example.com\n" for n in range(30)))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send_to_list(path)

    assert len(callbacks) == 1  # one batch task of the account for the whole list
    [call] = mailgun_server.calls()
    assert len(call.fields["to"]) == 30 and call.field("recipient-variables")
    assert set(account.messages.values_list("status", flat=True)) == {Status.SENT}


def test_a_list_of_system_mail_enqueues_every_message(
    ready, smtp_server, address_list, django_capture_on_commit_callbacks
):
    ready("system")
    path = address_list("ann@example.com\nbob@example.com\n")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("smtp_accounts", "send", "--type", "system", "--to-list", str(path),
                     "--subject", "Notice", stdout=io.StringIO(),
                     stdin=io.StringIO("Body"))  # fmt: skip

    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "ann@example.com", "bob@example.com"]  # fmt: skip


def test_queue_campaign_raises_when_no_account_is_ready(db):
    with pytest.raises(NoReadyAccount):
        services.queue_campaign("campaigns", ["ann@example.com"], subject="S", body="B")
    assert not OutboundMessage.objects.exists()


@pytest.mark.django_db(transaction=True)  # the command's own commit sends, as from a shell
def test_sending_inline_prints_the_summary_and_no_log_line_of_ours(
    campaigns_relay, address_list, caplog, smtp_server
):
    caplog.set_level(logging.INFO)
    path = address_list("ann@example.com\nbob@example.com\n")
    output = send_to_list(path)  # no broker: delivered by this very command
    assert len(smtp_server.messages) == 2 and "Queued 2 messages" in output
    ours = [r for r in caplog.records if r.name.startswith(("outbox", "smtp_accounts"))]
    assert not [r for r in ours if r.levelno < logging.WARNING]
    call_command("smtp_accounts", "send", "--type", "campaigns", "--to-list", str(path),
                 "--subject", "Spring news", verbosity=2, stdout=io.StringIO(),
                 stdin=io.StringIO("Hello"))  # fmt: skip
    assert any(r.name == "outbox.services.deliver" for r in caplog.records)  # asked for
