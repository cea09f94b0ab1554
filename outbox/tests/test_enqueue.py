"""Writing mail: send_email and enqueue_message queue a row, enqueue on commit, refuse bad mail.

Tasks run inline here (no broker); test_worker.py runs them in a real worker.
"""

import pytest
from django.db import transaction

from outbox import services
from outbox.models import OutboundMessage
from smtp_accounts.services import NoReadyAccount

Status = OutboundMessage.Status


def send(account_type="system", **fields):
    values = {"to": ["ann@example.com"], "subject": "Invoice 42", "body": "Hello Ann"}
    return services.send_email(account_type=account_type, **{**values, **fields})


def test_send_email_delivers_through_the_ready_account_after_commit(
    ready, smtp_server, django_capture_on_commit_callbacks
):
    account = ready()
    with django_capture_on_commit_callbacks(execute=True):
        message = send(html_body="<p>Hello Ann</p>")
        assert smtp_server.messages == []  # nothing leaves before the commit

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.account == account and message.attempts == 1
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["ann@example.com"]
    assert received.message["From"] == "CRM <crm@example.com>"
    assert received.message["Subject"] == "Invoice 42"
    assert received.message.get_body(("plain",)).get_content().strip() == "Hello Ann"
    assert "<p>Hello Ann</p>" in received.message.get_body(("html",)).get_content()
    assert message.provider_message_id == received.message["Message-ID"]


def test_a_rolled_back_transaction_sends_nothing(
    ready, smtp_server, django_capture_on_commit_callbacks
):
    ready()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            send()
            raise RuntimeError("the caller's work failed")

    assert callbacks == [] and not OutboundMessage.objects.exists()
    assert smtp_server.messages == []


def test_mail_goes_through_the_account_of_its_type(ready, smtp_server):
    ready("system", name="System")
    ready("campaigns", name="Old campaigns", is_active=False)
    ready("campaigns", name="Unverified campaigns", verified_at=None)
    campaigns = ready("campaigns", name="Campaigns")

    assert send("campaigns").account == campaigns


def test_no_ready_account_of_the_type_is_a_clear_error(ready):
    ready("system", is_active=False)

    with pytest.raises(NoReadyAccount) as caught:
        send("system")
    assert str(caught.value).startswith(
        "There is no active and verified System account, so the email was not sent."
    )
    assert "System Settings > SMTP Accounts" in str(caught.value)
    with pytest.raises(ValueError, match="Unknown account type 'newsletters'"):
        send("newsletters")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"to": []}, "no recipient"),
        ({"to": ["not an address"]}, "'not an address' is not a valid email address"),
        ({"subject": "Hi\nBcc: everyone@example.com"}, "newlines"),
        ({"body": "binary\x00junk"}, "Remove NUL characters"),
    ],
)
def test_a_message_that_cannot_go_is_refused_before_it_is_queued(ready, fields, error):
    ready()

    with pytest.raises(ValueError, match=error):
        send(**fields)
    assert not OutboundMessage.objects.exists()


def test_an_idempotency_key_queues_and_sends_once(
    ready, smtp_server, django_capture_on_commit_callbacks
):
    ready()
    with django_capture_on_commit_callbacks(execute=True):
        first = send(idempotency_key="invoice-42")
        second = send(idempotency_key="invoice-42")

    assert first.pk == second.pk and OutboundMessage.objects.count() == 1
    assert len(smtp_server.messages) == 1
