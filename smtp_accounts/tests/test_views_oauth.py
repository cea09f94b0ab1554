"""The Sign in pages: the start POST, the callback, and the form's Sign-in field."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from smtp_accounts.models import SmtpAccount
from smtp_accounts.tests.fixtures.oauth_server import sign_in

pytestmark = pytest.mark.django_db

CALLBACK = "/settings/smtp-accounts/oauth/callback/"


@pytest.fixture
def account(oauth_server, make_account):
    return make_account(name="Gmail desk", password="", auth_method="google",
                        host="smtp.gmail.com", username="crm-sender@example.com")


def start(client, account):
    """POST Sign in; return the provider's URL it redirected to."""
    response = client.post(f"/settings/smtp-accounts/{account.pk}/oauth/")
    assert response.status_code == 302
    return response["Location"]


def provider_redirect(url):
    """Follow the authorization URL at the provider; return the callback path + query."""
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def test_sign_in_redirects_to_the_provider_with_this_sites_callback(admin_client, account):
    url = start(admin_client, account)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["redirect_uri"] == f"http://testserver{CALLBACK}"
    assert query["code_challenge_method"] == "S256"


def test_the_callback_signs_in_and_the_list_says_signed_in(admin_client, account, oauth_server):
    callback = provider_redirect(start(admin_client, account))

    response = admin_client.get(callback, follow=True)

    assert response.redirect_chain[-1][0] == "/settings/smtp-accounts/"
    page = response.content.decode()
    assert "“Gmail desk” is signed in as crm-sender@example.com" in page
    assert "Signed in" in page
    assert not any(token in page for token in oauth_server.live_tokens())
    assert SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_a_reused_callback_is_a_page_that_says_what_to_do(admin_client, account):
    callback = provider_redirect(start(admin_client, account))
    admin_client.get(callback)

    response = admin_client.get(callback)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Sign-in did not finish" in page and "click Sign in again" in page
    assert "SMTP Accounts" in page  # inside the CRM layout


def test_access_denied_is_a_page_with_a_way_back(admin_client, account, oauth_server):
    oauth_server.deny()
    response = admin_client.get(provider_redirect(start(admin_client, account)))

    page = response.content.decode()
    assert response.status_code == 200
    assert "cancelled at Google" in page
    assert f"/settings/smtp-accounts/{account.pk}/edit/" in page
    assert not SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_a_callback_without_anything_is_a_page_not_an_error(admin_client, oauth_server):
    response = admin_client.get(CALLBACK)
    assert response.status_code == 200
    assert "not valid any more" in response.content.decode()


def test_a_password_account_cannot_start_a_sign_in(admin_client, make_account, oauth_server):
    account = make_account()
    response = admin_client.post(f"/settings/smtp-accounts/{account.pk}/oauth/", follow=True)
    assert "signs in with a password" in response.content.decode()


def test_signing_in_needs_the_change_permission(client, make_user, account):
    client.force_login(make_user("view"))
    assert client.post(f"/settings/smtp-accounts/{account.pk}/oauth/").status_code == 403
    assert client.get(CALLBACK).status_code == 403


def test_the_edit_page_offers_the_button_and_never_a_token(admin_client, account, oauth_server):
    page = admin_client.get(f"/settings/smtp-accounts/{account.pk}/edit/").content.decode()
    assert "Sign in needed" in page and "Sign in with Google" in page

    sign_in(account)
    page = admin_client.get(f"/settings/smtp-accounts/{account.pk}/edit/").content.decode()
    assert "Signed in" in page and "crm-sender@example.com" in page
    assert not any(token in page for token in oauth_server.live_tokens())


def form_data(**fields):
    return {"provider": "internal", "name": "Gmail desk", "account_type": "system",
            "host": "smtp.gmail.com", "port": "587", "security": "starttls",
            "username": "crm-sender@example.com", "email": "crm@example.com",
            "is_active": "on", **fields}


def test_the_form_offers_only_configured_sign_ins(admin_client, settings, oauth_server):
    settings.SMTP_ACCOUNTS_MICROSOFT_CLIENT_ID = ""
    page = admin_client.get("/settings/smtp-accounts/new/").content.decode()
    assert 'value="google"' in page and 'value="microsoft"' not in page

    response = admin_client.post("/settings/smtp-accounts/new/",
                                 form_data(auth_method="microsoft"))
    assert response.status_code == 200
    assert "That Sign-in is not set up on this CRM" in response.content.decode()


def test_no_sign_in_choice_without_any_client_id(admin_client):
    page = admin_client.get("/settings/smtp-accounts/new/").content.decode()
    assert 'name="auth_method"' not in page


def test_an_oauth_account_is_saved_without_a_password(admin_client, oauth_server):
    response = admin_client.post("/settings/smtp-accounts/new/", form_data(auth_method="google"))
    assert response.status_code == 302
    account = SmtpAccount.objects.get(name="Gmail desk")
    assert account.auth_method == "google" and not account.has_password


def test_a_post_without_auth_method_keeps_the_sign_in(admin_client, account, oauth_server):
    account = sign_in(account)
    response = admin_client.post(f"/settings/smtp-accounts/{account.pk}/edit/",
                                 form_data(from_name="Desk"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.auth_method == "google" and account.is_signed_in


@pytest.mark.parametrize("change", [{"host": "smtp.googlemail.com"}, {"port": "465"},
                                    {"username": "other@example.com"},
                                    {"auth_method": "microsoft"}])
def test_changing_host_port_user_or_sign_in_drops_the_tokens(admin_client, account,
                                                             oauth_server, change):
    account = sign_in(account)
    data = form_data(**{"auth_method": "google", **change})
    if change.get("port"):
        data["security"] = "ssl"
    response = admin_client.post(f"/settings/smtp-accounts/{account.pk}/edit/", data)
    assert response.status_code == 302
    account.refresh_from_db()
    assert not account.is_signed_in and not account.oauth_access_token_encrypted
    assert account.signed_in_as == ""


def test_a_gmail_password_account_is_told_about_app_passwords(admin_client, make_account):
    account = make_account(host="smtp.gmail.com")
    page = admin_client.get(f"/settings/smtp-accounts/{account.pk}/edit/").content.decode()
    assert "https://support.google.com/accounts/answer/185833" in page
    assert 'data-app-password-for="gmail">' in page  # shown, not hidden
