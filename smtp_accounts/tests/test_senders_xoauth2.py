"""AUTH XOAUTH2 against a real aiosmtpd server that accepts only the OAuth server's live
tokens: the sender, the connection check, the Test flow and delivery all log in with it."""

import logging
import re

import pytest
from django.core.mail import EmailMessage

from smtp_accounts import services
from smtp_accounts.models import SmtpAccount
from smtp_accounts.senders import ConfigurationError, get_sender
from smtp_accounts.tests.fixtures.oauth_server import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(xoauth2_server, oauth_account_for):
    return sign_in(oauth_account_for(xoauth2_server, name="Gmail desk"))


def send_one(account):
    message = EmailMessage(subject="Hello", body="Hi there.", to=["alice@example.org"])
    return get_sender(SmtpAccount.objects.get(pk=account.pk)).send(message)


def test_a_signed_in_account_sends_with_xoauth2(account, xoauth2_server):
    send_one(account)

    [received] = xoauth2_server.messages
    assert received.login == "crm-sender@example.com"
    assert received.message["Subject"] == "Hello"


def test_a_refused_token_says_why_and_the_next_try_gets_a_new_one(
    account, xoauth2_server, oauth_server
):
    oauth_server.expire_access_tokens()  # the server refuses what the CRM still holds

    with pytest.raises(ConfigurationError) as refused:
        send_one(account)
    assert "refused the sign-in token (535" in refused.value.reason
    assert "expired or was revoked" in refused.value.reason
    assert not xoauth2_server.messages

    send_one(account)  # the refused token was dropped: this one refreshes
    assert oauth_server.refreshes == 1
    assert len(xoauth2_server.messages) == 1


def test_a_token_of_another_mailbox_names_the_user(xoauth2_server, oauth_server,
                                                   oauth_account_for):
    oauth_server.mailbox = "someone-else@example.com"
    account = sign_in(oauth_account_for(xoauth2_server))

    with pytest.raises(ConfigurationError) as refused:
        send_one(account)
    assert "does not belong to the User crm-sender@example.com" in refused.value.reason


def test_the_check_logs_in_with_xoauth2(account):
    result = services.check_account(account)

    assert result.ok, result.failure
    assert "with XOAUTH2" in result.steps[-1].detail


def test_the_check_of_an_account_not_signed_in_says_to_sign_in(xoauth2_server,
                                                               oauth_account_for):
    account = oauth_account_for(xoauth2_server)
    result = services.check_account(account)
    assert result.failure.name == "login"
    assert "click Sign in with Google" in result.failure.detail


def test_the_test_email_flow_goes_through_xoauth2(
    account, xoauth2_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.request_test_email(account, to="boss@example.com")

    [received] = xoauth2_server.messages
    assert received.login == "crm-sender@example.com"
    body = received.message.get_body(preferencelist=("plain",)).get_content()
    code = re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)
    services.confirm_test_email(account, code)
    assert SmtpAccount.objects.get(pk=account.pk).is_verified


def test_no_token_reaches_a_log(xoauth2_server, oauth_server, oauth_account_for, caplog):
    caplog.set_level(logging.DEBUG)
    oauth_server.token_lifetime = 30  # every use refreshes
    account = sign_in(oauth_account_for(xoauth2_server))
    send_one(account)
    services.check_account(SmtpAccount.objects.get(pk=account.pk))
    oauth_server.expire_access_tokens()
    with pytest.raises(ConfigurationError):
        SmtpAccount.objects.filter(pk=account.pk).update(
            oauth_access_token_expires_at="2999-01-01T00:00Z")
        send_one(account)

    assert oauth_server.live_tokens()
    assert caplog.text
    assert not any(token in caplog.text for token in oauth_server.live_tokens())
