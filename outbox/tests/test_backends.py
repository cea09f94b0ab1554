"""Django's own mail (send_mail, EmailMultiAlternatives …) through the System Account."""

import pytest
from django.core import mail
from django.utils import timezone

from outbox.models import OutboundMessage
from smtp_accounts.services import NoReadyAccount

Status = OutboundMessage.Status


@pytest.fixture
def system_account(smtp_server, smtp_account_for, settings):
    settings.EMAIL_BACKEND = "outbox.backends.EmailBackend"
    return smtp_account_for(smtp_server, verified_at=timezone.now(), from_name="Acme CRM")


def test_send_mail_goes_through_the_system_account_via_the_outbox(
    system_account, smtp_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sent = mail.send_mail("Password reset", "Follow the link", None, ["ann@example.com"])

    assert sent == 1
    row = OutboundMessage.objects.get()
    assert row.account == system_account and row.status == Status.SENT
    [received] = smtp_server.messages
    # Django's DEFAULT_FROM_EMAIL becomes the account's own From, which its server accepts.
    assert received.message["From"] == "Acme CRM <crm@example.com>"
    assert received.rcpt_tos == ["ann@example.com"]
    assert received.message.get_content().strip() == "Follow the link"


def test_an_explicit_sender_and_an_html_alternative_are_kept(
    system_account, smtp_server, django_capture_on_commit_callbacks
):
    message = mail.EmailMultiAlternatives(
        "Welcome", "Welcome, Ann", "Support <support@example.com>", ["ann@example.com"],
        cc=["boss@example.com"], headers={"X-Campaign": "onboarding"},
    )  # fmt: skip
    message.attach_alternative("<h1>Welcome, Ann</h1>", "text/html")

    with django_capture_on_commit_callbacks(execute=True):
        assert message.send() == 1

    [received] = smtp_server.messages
    assert received.message["From"] == "Support <support@example.com>"
    assert received.message["X-Campaign"] == "onboarding"
    assert sorted(received.rcpt_tos) == ["ann@example.com", "boss@example.com"]
    assert "<h1>Welcome, Ann</h1>" in received.message.get_body(("html",)).get_content()


def test_without_a_ready_system_account_send_mail_says_so(settings, db):
    settings.EMAIL_BACKEND = "outbox.backends.EmailBackend"

    expected = "There is no active and verified System account"
    with pytest.raises(NoReadyAccount, match=expected):
        mail.send_mail("Hi", "Hello", None, ["ann@example.com"])
    assert mail.send_mail("Hi", "Hello", None, ["ann@example.com"], fail_silently=True) == 0
    assert not OutboundMessage.objects.exists()


def test_attachments_are_refused_rather_than_dropped(system_account):
    message = mail.EmailMessage("Report", "Attached", None, ["ann@example.com"])
    message.attach("report.csv", "a,b\n1,2\n", "text/csv")

    with pytest.raises(ValueError, match="cannot carry attachments"):
        message.send()
    assert not OutboundMessage.objects.exists()
