"""MailgunSender against a local Mailgun-like server (see tests/fixtures/mailgun_server.py)."""

import logging
import socket

import pytest
from django.core.mail import EmailMessage

from smtp_accounts.senders import (
    ConfigurationError,
    PermanentFailure,
    TemporaryFailure,
    get_sender,
)

pytestmark = pytest.mark.django_db


def make_message(subject="Spring campaign", to=("alice@example.org",), **kwargs):
    return EmailMessage(subject=subject, body="Twenty percent off.", to=list(to), **kwargs)


def send_one(account, message=None):
    return get_sender(account).send(message or make_message())


def test_send_returns_mailguns_id(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)

    message_id = send_one(account).provider_id

    [request] = mailgun_server.requests
    assert request.auth_ok
    assert request.domain == "mg.example.com"
    assert request.field("from") == "CRM <crm@mg.example.com>"
    assert request.field("to") == "alice@example.org"
    assert request.field("subject") == "Spring campaign"
    assert request.field("text") == "Twenty percent off."
    assert message_id.startswith("<") and message_id.endswith("@mg.example.com>")


def test_a_from_set_on_the_message_is_kept(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)

    send_one(account, make_message(from_email="Sales <sales@mg.example.com>"))

    assert mailgun_server.requests[0].field("from") == "Sales <sales@mg.example.com>"


def test_one_session_serves_several_sends(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)

    with get_sender(account) as sender:
        ids = [sender.send(make_message(subject=f"Message {n}")).provider_id for n in range(3)]

    assert len(set(ids)) == 3
    assert [r.field("subject") for r in mailgun_server.requests] == [
        "Message 0",
        "Message 1",
        "Message 2",
    ]
    assert mailgun_server.connections == 1


def test_missing_api_key(mailgun_server, mailgun_account_for, settings):
    settings.MAILGUN_API_KEY = ""
    account = mailgun_account_for(mailgun_server)

    with pytest.raises(ConfigurationError) as failure:
        send_one(account)

    assert failure.value.reason.startswith("MAILGUN_API_KEY is not set")
    assert mailgun_server.requests == []


def test_rejected_api_key(mailgun_server, mailgun_account_for, settings):
    settings.MAILGUN_API_KEY = "key-wrong"
    account = mailgun_account_for(mailgun_server)

    with pytest.raises(ConfigurationError) as failure:
        send_one(account)

    assert failure.value.reason.startswith("Mailgun rejected the API key (401 Forbidden)")
    assert "check MAILGUN_API_KEY" in failure.value.reason


def test_unknown_domain(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server, domain="mg.unknown.com")

    with pytest.raises(ConfigurationError) as failure:
        send_one(account)

    assert failure.value.reason.startswith("Mailgun does not know the domain mg.unknown.com")


def test_a_wrong_api_url_is_a_configuration_error(mailgun_server, mailgun_account_for, settings):
    settings.MAILGUN_API_URL = mailgun_server.api_url.replace("/v3", "/v2")
    account = mailgun_account_for(mailgun_server)

    with pytest.raises(ConfigurationError) as failure:
        send_one(account)

    expected = f"{settings.MAILGUN_API_URL} has no Mailgun messages API"
    assert failure.value.reason.startswith(expected)


def test_an_added_domain_is_known(mailgun_server, mailgun_account_for):
    mailgun_server.add_domain("mg.other.com")
    account = mailgun_account_for(mailgun_server, domain="mg.other.com")

    send_one(account)

    assert mailgun_server.requests[0].domain == "mg.other.com"


def test_400_is_permanent_with_mailguns_message(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)
    mailgun_server.fail(400)

    with pytest.raises(PermanentFailure) as failure:
        send_one(account)

    assert failure.value.reason == (
        "Mailgun refused the message (400 'to' parameter is not a valid address. "
        "please check documentation)."
    )


@pytest.mark.parametrize("status", [429, 500])
def test_busy_or_failing_mailgun_is_temporary(mailgun_server, mailgun_account_for, status):
    account = mailgun_account_for(mailgun_server)
    mailgun_server.fail(status)

    with pytest.raises(TemporaryFailure) as failure:
        send_one(account)

    assert failure.value.reason.startswith(f"Mailgun could not take the message now ({status} ")


def test_slow_mailgun_times_out(mailgun_slow, mailgun_account_for):
    account = mailgun_account_for(mailgun_slow)

    with pytest.raises(TemporaryFailure) as failure:
        send_one(account)

    assert failure.value.reason == (
        f"Timed out after 1 s talking to Mailgun ({mailgun_slow.api_url})."
    )


def test_unreachable_mailgun_is_temporary(mailgun_server, mailgun_account_for, settings):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    settings.MAILGUN_API_URL = f"http://127.0.0.1:{port}/v3"
    account = mailgun_account_for(mailgun_server)

    with pytest.raises(TemporaryFailure) as failure:
        send_one(account)

    assert failure.value.reason.startswith(f"Could not reach Mailgun at http://127.0.0.1:{port}/v3")


def test_no_recipients_is_permanent(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server)

    with pytest.raises(PermanentFailure):
        send_one(account, make_message(to=()))

    assert mailgun_server.requests == []


def test_the_api_key_is_never_in_reasons_or_logs(mailgun_server, mailgun_account_for, caplog):
    caplog.set_level(logging.DEBUG)
    account = mailgun_account_for(mailgun_server)
    reasons = []
    for status in (400, 429, 500):
        mailgun_server.fail(status)
        with pytest.raises((TemporaryFailure, PermanentFailure)) as failure:
            send_one(account)
        reasons.append(failure.value.reason)

    assert not any(mailgun_server.api_key in reason for reason in reasons)
    assert mailgun_server.api_key not in caplog.text
