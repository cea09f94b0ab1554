"""Delivery through a signed-in (OAuth) account: a revoked grant fails the message with a
sentence that says what to do, on the message and on the account's row."""

import pytest

from outbox.models import OutboundMessage
from smtp_accounts import services
from smtp_accounts.models import SmtpAccount
from smtp_accounts.tests.fixtures.oauth_server import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(xoauth2_server, oauth_account_for):
    return sign_in(oauth_account_for(xoauth2_server, name="Gmail desk"))


def test_a_revoked_grant_fails_the_message_and_the_row_says_sign_in_again(
    account, oauth_server, xoauth2_server, django_capture_on_commit_callbacks
):
    SmtpAccount.objects.filter(pk=account.pk).update(verified_at="2026-01-01T00:00Z")
    oauth_server.expire_access_tokens()
    oauth_server.revoke()
    SmtpAccount.objects.filter(pk=account.pk).update(oauth_access_token_expires_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_email(account_type="system", to=["alice@example.org"],
                                      subject="Invoice", body="Due.")

    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.FAILED
    assert "sign in again" in message.last_error
    row = SmtpAccount.objects.get(pk=account.pk)
    assert "sign in again" in row.last_error
    assert not row.is_signed_in
    assert not xoauth2_server.messages
