"""Bounces as real servers write them: who failed, why, and which message it was."""

import pytest

from smtp_accounts.dsn import parse_bounce
from smtp_accounts.tests.fixtures.imap_server import DSN_DIR


def read(name):
    return parse_bounce((DSN_DIR / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "recipient", "status", "reason_part", "message_id"),
    [
        ("gmail_no_such_user.eml", "no.such.user@example.org", "5.1.1",
         "The email account that you tried to reach does not exist",
         "<4f6c1e0b9d2a@crm.example.com>"),
        ("exchange_recipient_not_found.eml", "j.doe@contoso.com", "5.1.10",
         "550 5.1.10 RESOLVER.ADR.RecipientNotFound", "<9b1d7e3a5c2f@crm.example.com>"),
        ("postfix_user_unknown.eml", "gone@example.net", "5.1.1",
         "User unknown in virtual mailbox table", "<c3a97e1f02b4@crm.example.com>"),
    ],
)
def test_a_permanent_failure_names_the_recipient_the_reason_and_our_message(
    name, recipient, status, reason_part, message_id
):
    report = read(name)

    assert report.original_message_id == message_id
    assert [f.email for f in report.permanent] == [recipient]
    assert report.temporary == []
    assert report.permanent[0].status == status
    assert reason_part in report.permanent[0].reason
    assert "\n" not in report.permanent[0].reason  # folded lines read as one sentence


def test_a_delay_is_a_temporary_failure_with_the_original_from_its_headers_part():
    report = read("postfix_delayed.eml")  # text/rfc822-headers, not the whole message

    assert report.original_message_id == "<7e55d0c2a913@crm.example.com>"
    assert report.permanent == []
    [delay] = report.temporary
    assert (delay.email, delay.status) == ("slow@example.com", "4.4.1")
    assert "Connection timed out" in delay.reason


def test_a_non_standard_bounce_is_read_though_it_returns_no_message_id():
    report = read("qmail_no_mailbox.eml")  # qmail writes plain text, no report parts

    assert [f.email for f in report.permanent] == ["left.company@example.com"]
    assert report.original_message_id == ""  # the outbox then matches by recipient
    assert "cannot be delivered" in report.permanent[0].reason


def test_an_auto_reply_is_not_a_bounce():
    assert read("out_of_office.eml") is None


def test_mail_that_is_not_mime_at_all_is_not_a_bounce():
    assert parse_bounce(b"\xff\xfe garbage \x00 without headers") is None
