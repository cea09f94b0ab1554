"""The Test and Confirm URLs: JSON for the pop-up, pages without JS, permissions and CSRF.

The flow tests use real commits (transaction=True), so the test email is sent by the eager
task during the request, as in `make run`.
"""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from smtp_accounts.models import TestEmail

JSON = {"HTTP_ACCEPT": "application/json"}
flow = pytest.mark.django_db(transaction=True)


def code_in(server):
    """The code of the last test email the server received."""
    body = server.messages[-1].message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


def urls(account):
    return reverse("smtp_accounts:test", args=[account.pk]), reverse(
        "smtp_accounts:confirm", args=[account.pk]
    )


@pytest.fixture
def account(smtp_server, smtp_account_for):
    return smtp_account_for(smtp_server)


@flow
def test_the_pop_up_flow_sends_the_code_and_confirms_it(admin_client, account, smtp_server):
    test_url, confirm_url = urls(account)

    sent = admin_client.post(test_url, {"email": "boss@example.com"}, **JSON).json()
    state = admin_client.get(test_url, **JSON).json()
    confirmed = admin_client.post(confirm_url, {"code": code_in(smtp_server)}, **JSON)

    assert sent["ok"] is True
    assert sent["test"]["state"] == "sent" and sent["test"]["awaiting_code"] is True
    assert sent["test"]["recipient"] == "boss@example.com"
    assert sent["test"]["message"].startswith("Sent to boss@example.com at ")
    assert smtp_server.messages[-1].rcpt_tos == ["boss@example.com"]
    assert state["test"]["state"] == "sent"
    assert confirmed.status_code == 200
    assert confirmed.json()["ok"] is True
    assert confirmed.json()["account"]["verified"] is True
    assert confirmed.json()["account"]["verified_display"]
    account.refresh_from_db()
    assert account.is_verified


@flow
def test_a_wrong_code_says_how_many_tries_are_left(admin_client, account, smtp_server):
    test_url, confirm_url = urls(account)
    admin_client.post(test_url, {"email": "boss@example.com"}, **JSON)

    answer = admin_client.post(confirm_url, {"code": wrong(code_in(smtp_server))}, **JSON)

    assert answer.status_code == 400
    assert answer.json()["error"] == "That code is not right. 4 tries left."
    assert answer.json()["tries_left"] == 4


@flow
def test_an_expired_code_says_to_send_a_new_test(admin_client, account, smtp_server):
    test_url, confirm_url = urls(account)
    admin_client.post(test_url, {"email": "boss@example.com"}, **JSON)
    test = TestEmail.objects.get()
    TestEmail.objects.filter(pk=test.pk).update(expires_at=test.sent_at - timedelta(seconds=1))

    answer = admin_client.post(confirm_url, {"code": code_in(smtp_server)}, **JSON).json()

    assert "expired" in answer["error"] and "Send a new test" in answer["error"]
    assert answer["tries_left"] == 0
    assert answer["test"]["state"] == "expired"


@flow
def test_a_refused_login_shows_its_reason_and_never_the_password(
    admin_client, smtp_server, smtp_account_for
):
    account = smtp_account_for(smtp_server, password="Wr0ng-Secret-Pw")
    test_url, _confirm_url = urls(account)

    answer = admin_client.post(test_url, {"email": "boss@example.com"}, **JSON)

    state = answer.json()["test"]
    assert answer.status_code == 200
    assert state["state"] == "failed" and state["awaiting_code"] is False
    assert "rejected the login" in state["error"]
    assert state["message"].startswith("Could not send the test email to boss@example.com:")
    assert "Wr0ng-Secret-Pw" not in answer.content.decode()
    assert "Traceback" not in answer.content.decode()


@flow
def test_a_second_test_right_away_is_throttled(admin_client, account, smtp_server):
    test_url, _confirm_url = urls(account)
    admin_client.post(test_url, {"email": "boss@example.com"}, **JSON)

    answer = admin_client.post(test_url, {"email": "boss@example.com"}, **JSON)
    page = admin_client.post(test_url, {"email": "boss@example.com"})

    assert answer.status_code == 429
    assert re.fullmatch(r"Wait \d+ seconds? before sending another test email\.",
                        answer.json()["error"])
    assert 1 <= answer.json()["wait_seconds"] <= 30
    assert page.status_code == 200
    assert "before sending another test email" in page.content.decode()
    assert len(smtp_server.messages) == 1


def test_a_bad_address_is_refused_beside_the_field(admin_client, account):
    test_url, _confirm_url = urls(account)

    answer = admin_client.post(test_url, {"email": "not an address"}, **JSON)
    page = admin_client.post(test_url, {"email": ""})

    assert answer.status_code == 400
    assert answer.json()["error"] == "Enter a valid email address."
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    assert not TestEmail.objects.exists()


@flow
def test_without_js_the_pages_walk_through_send_and_confirm(
    admin_client, admin_user, account, smtp_server
):
    test_url, confirm_url = urls(account)

    form = admin_client.get(test_url).content.decode()
    sent_response = admin_client.post(test_url, {"email": "boss@example.com"}, follow=True)
    sent = sent_response.content.decode()
    bad_code = wrong(code_in(smtp_server))
    refused = admin_client.post(confirm_url, {"code": bad_code})
    confirmed = admin_client.post(confirm_url, {"code": code_in(smtp_server)}, follow=True)

    assert f'value="{admin_user.email}"' in form
    # Post/redirect/get: reloading the result page shows it again, it does not send again.
    assert sent_response.redirect_chain == [(test_url, 302)]
    assert "Sent to boss@example.com at" in sent
    assert 'name="code"' in sent and ">Confirm</button>" in sent
    assert refused.status_code == 200
    assert "That code is not right. 4 tries left." in refused.content.decode()
    assert bad_code not in refused.content.decode()  # a typed code is never echoed back
    assert confirmed.redirect_chain == [(reverse("smtp_accounts:list"), 302)]
    assert f"“{account.name}” is verified" in confirmed.content.decode()


def test_only_admins_who_may_change_accounts_can_test(client, make_user, account):
    test_url, confirm_url = urls(account)
    client.force_login(make_user("view"))

    assert client.get(test_url).status_code == 403
    assert client.post(test_url, {"email": "a@example.com"}).status_code == 403
    assert client.post(confirm_url, {"code": "123456"}).status_code == 403
    client.logout()
    assert client.post(test_url, {"email": "a@example.com"}).url.startswith("/accounts/login/")


def test_confirm_takes_only_post_and_a_csrf_token(admin_user, account):
    _test_url, confirm_url = urls(account)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.get(confirm_url)["Location"] == urls(account)[0]  # GET only shows the page
    assert client.post(confirm_url, {"code": "123456"}).status_code == 403
    assert client.post(urls(account)[0], {"email": "a@example.com"}).status_code == 403
    assert not TestEmail.objects.exists()


def test_an_unknown_account_is_404(admin_client):
    answer = admin_client.post("/settings/smtp-accounts/999/test/", {"email": "a@example.com"})

    assert answer.status_code == 404
