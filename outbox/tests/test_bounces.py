"""Bounce mailboxes end to end: mail sent through aiosmtpd, its bounce (as Postfix, qmail …
write them) delivered to a real Dovecot, read by `mail_log fetch_bounces` and by beat's task:
the right row fails, the address is suppressed, the bounce is flagged \\Seen and kept, and the
next mail to that address never reaches the server."""

import io

import pytest
from django.core.management import CommandError, call_command

from outbox import services
from outbox.models import OutboundMessage, Suppression

Status = OutboundMessage.Status
POSTFIX_ID = "<c3a97e1f02b4@crm.example.com>"  # the Message-ID inside postfix_user_unknown.eml


@pytest.fixture
def send(bounce_relay, smtp_server):
    """send(to, subject) -> a System message sent through aiosmtpd, with `message_id`: the
    Message-ID the server received (what a bounce quotes back)."""

    def make(to, subject="Your order has shipped"):
        message = services.send_email(account_type="system", to=[to], subject=subject,
                                      body="Hi")  # fmt: skip
        services.deliver_message(message.pk)
        message.refresh_from_db()
        assert message.status == Status.SENT
        message.message_id = smtp_server.messages[-1].message["Message-ID"]
        return message

    return make


def fetch(*args):
    out = io.StringIO()
    call_command("mail_log", "fetch_bounces", *args, stdout=out)
    return out.getvalue()


def test_a_bounce_fails_its_message_suppresses_the_address_and_stops_the_next_send(
    bounce_relay, send, smtp_server, imap_server
):
    other = send("ann@example.net", subject="Welcome")
    message = send("gone@example.net")
    imap_server.deliver("postfix_user_unknown.eml", **{POSTFIX_ID: message.message_id})
    imap_server.deliver("out_of_office.eml")

    printed = fetch("Relay")

    assert printed.splitlines()[0] == "Relay: 1 bounce read."
    assert f"gone@example.net: message {message.pk} failed, address suppressed" in printed
    message.refresh_from_db()
    assert message.status == Status.FAILED and "User unknown in virtual" in message.last_error
    assert message.last_error.startswith(
        "The receiving mail server reported that the message to gone@example.net bounced: 550"
    )
    other.refresh_from_db()
    assert other.status == Status.SENT  # the Message-ID chose the row, not the time
    assert Suppression.objects.get().email == "gone@example.net"
    assert Suppression.objects.get().message == message
    # Flagged read, never deleted; the person's auto-reply is left for the people.
    assert imap_server.unseen() == ["Automatic reply: Your invoice for November"]
    assert imap_server.count() == 2
    bounce_relay.refresh_from_db()
    assert bounce_relay.bounce_error == "" and bounce_relay.bounce_checked_at is not None

    assert fetch("Relay") == "Relay: 0 bounces read.\n"  # nothing is applied twice
    assert message.history.filter(outcome="bounced").count() == 1

    received = len(smtp_server.messages)
    again = services.send_email(account_type="system", to=["Gone@Example.net"], subject="Hi",
                                body="x")  # fmt: skip
    services.deliver_message(again.pk)
    again.refresh_from_db()
    assert again.status == Status.FAILED and len(smtp_server.messages) == received
    assert [a.outcome for a in again.history.all()] == ["suppressed"]


def test_a_bounce_without_the_original_message_id_is_matched_by_recipient(
    bounce_relay, send, imap_server
):
    older = send("left.company@example.com", subject="Renewal reminder")
    newer = send("left.company@example.com", subject="Renewal reminder")
    imap_server.deliver("qmail_no_mailbox.eml")  # qmail quotes the original as plain text

    fetch("Relay")

    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == (Status.SENT, Status.FAILED)  # the most recent
    assert newer.last_error.startswith(
        "The receiving mail server reported that the message to left.company@example.com bounced"
    )


def test_a_delay_is_a_history_entry_only(bounce_relay, send, imap_server):
    message = send("slow@example.com", subject="Meeting notes")
    original = "<7e55d0c2a913@crm.example.com>"  # the Message-ID inside the sample
    imap_server.deliver("postfix_delayed.eml", **{original: message.message_id})

    printed = fetch("Relay")

    assert f"slow@example.com: message {message.pk} delayed" in printed
    message.refresh_from_db()
    assert message.status == Status.SENT and not Suppression.objects.exists()
    assert [a.outcome for a in message.history.all()] == ["sent", "deferred"]


def test_a_bounce_of_mail_the_crm_did_not_send_is_flagged_and_changes_nothing(
    bounce_relay, imap_server
):
    imap_server.deliver("exchange_recipient_not_found.eml")

    printed = fetch()  # every account with a mailbox

    assert "j.doe@contoso.com: matches no message the CRM sent; flagged read." in printed
    assert imap_server.unseen() == [] and not Suppression.objects.exists()


def test_an_unreachable_mailbox_is_a_clear_error_kept_on_the_account(bounce_relay, settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = []  # netguard now refuses 127.0.0.1

    with pytest.raises(CommandError) as caught:
        fetch("Relay")

    assert str(caught.value).startswith("Relay: ") and "\n" not in str(caught.value)
    assert "127.0.0.1 is a loopback address" in str(caught.value)
    bounce_relay.refresh_from_db()
    assert "127.0.0.1 is a loopback address" in bounce_relay.bounce_error
