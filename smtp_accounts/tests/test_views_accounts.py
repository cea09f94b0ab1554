from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from smtp_accounts.models import SmtpAccount
from smtp_accounts.services import pause_account, resume_account

LIST = reverse("smtp_accounts:list")
CREATE = reverse("smtp_accounts:create")

INTERNAL = {
    "provider": "internal",
    "name": "Support desk",
    "account_type": "customer_service",
    "host": "smtp.example.com",
    "port": "587",
    "username": "support@example.com",
    "password": "app-password-1",
    "security": "starttls",
    "email": "support@example.com",
    "from_name": "Demo Support",
    "is_active": "on",
}
EXTERNAL = {
    "provider": "external",
    "name": "Campaigns",
    "account_type": "campaigns",
    "domain": "mg.example.com",
    "email": "news@mg.example.com",
    "from_name": "Demo News",
    "is_active": "on",
}


def test_login_is_required(client, db):
    response = client.get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_user_without_view_permission_is_refused(client, make_user):
    client.force_login(make_user())
    assert client.get(LIST).status_code == 403


def test_viewer_sees_the_list_but_no_edit_buttons(client, make_user, make_account):
    make_account(name="Billing")
    client.force_login(make_user("view"))
    page = client.get(LIST).content.decode()
    assert "Billing" in page
    assert "+ Create new" not in page and ">Edit<" not in page and ">Delete<" not in page
    assert client.get(CREATE).status_code == 403


def test_empty_list_offers_both_providers(admin_client):
    page = admin_client.get(LIST).content.decode()
    assert "No SMTP accounts yet" in page
    assert "?provider=external" in page and "?provider=internal" in page


def test_list_shows_the_contract_columns(admin_client, make_account):
    make_account(name="Support desk", host="smtp.gmail.com", email="desk@example.com")
    page = admin_client.get(LIST).content.decode()
    for column in ("Account Name", "Host", "Email", "Active", "Verified", "Last Update", "Actions"):
        assert f">{column}</th>" in page
    assert "smtp.gmail.com:587" in page and "desk@example.com" in page
    assert "Not verified" in page


def test_list_query_count_does_not_grow_with_accounts(admin_client, make_account, admin_user):
    make_account(name="A")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(LIST)
    SmtpAccount.objects.bulk_create(
        SmtpAccount(name=f"Bulk {i}", email=f"b{i}@example.com", host="h.example.com", port=25,
                    updated_by=admin_user)
        for i in range(60)
    )
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(LIST)
    assert len(many) == len(few)
    assert "1–25 of 61" in response.content.decode()


def test_the_list_says_which_account_sends_each_type(admin_client, make_account):
    from django.utils import timezone

    now = timezone.now()
    make_account(name="Old desk", account_type="customer_service", verified_at=now)
    make_account(name="New desk", account_type="customer_service", verified_at=now)
    make_account(name="Untested", account_type="system")
    rows = admin_client.get(LIST).content.decode().split("data-account-row")[1:]
    sending = [row for row in rows if "● Sending" in row]
    assert len(sending) == 1 and "Old desk" in sending[0]
    assert "Customer Service mail goes out through this account" in sending[0]


def test_the_row_shows_the_last_test_until_the_account_is_verified(admin_client, make_account):
    from datetime import timedelta

    from django.utils import timezone

    from smtp_accounts.models import TestEmail

    failed = make_account(name="Failing")
    TestEmail.objects.create(account=failed, recipient="me@example.com", status="failed",
                             error="Timed out after 15 s talking to smtp.example.com:587.")
    waiting = make_account(name="Waiting")
    TestEmail.objects.create(account=waiting, recipient="boss@example.com", status="sent",
                             expires_at=timezone.now() + timedelta(minutes=10))
    rows = dict(
        (row.split('"')[1], row)
        for row in admin_client.get(LIST).content.decode().split("data-account-row=")[1:]
    )
    assert "failed: Timed out after 15 s talking to smtp.example.com:587." in rows[str(failed.pk)]
    assert "Code sent to boss@example.com" in rows[str(waiting.pk)]


def test_search_and_filters(admin_client, make_account):
    make_account(name="Gmail desk", host="smtp.gmail.com")
    make_account(name="Relay", host="relay.example.net", is_active=False)
    make_account(name="News", provider="external", domain="mg.example.com",
                 email="news@mg.example.com", host="", port=None, username="", password="")
    def names(query):
        rows = admin_client.get(LIST, query).context["object_list"]
        return sorted(a.name for a in rows)
    assert names({"q": "gmail"}) == ["Gmail desk"]
    assert names({"active": "no"}) == ["Relay"]
    assert names({"provider": "external"}) == ["News"]
    assert "No accounts match" in admin_client.get(LIST, {"q": "nothing"}).content.decode()


def test_create_internal_account_encrypts_the_password(admin_client, admin_user):
    response = admin_client.post(CREATE, INTERNAL, follow=True)
    assert response.redirect_chain[-1][0] == LIST
    assert "“Support desk” was created" in response.content.decode()
    account = SmtpAccount.objects.get(name="Support desk")
    assert account.get_password() == "app-password-1"
    assert "app-password-1" not in account.password_encrypted
    assert account.updated_by == admin_user
    assert "app-password-1" not in response.content.decode()


def test_create_external_account_ignores_smtp_fields(admin_client):
    admin_client.post(CREATE, {**EXTERNAL, "host": "smtp.evil.test", "password": "x"})
    account = SmtpAccount.objects.get(name="Campaigns")
    assert (account.provider, account.domain, account.host) == ("external", "mg.example.com", "")
    assert not account.has_password


def test_without_js_the_other_providers_junk_does_not_block_a_save(admin_client):
    # Without JS every field is posted; the other provider's values are ignored, not judged.
    junk = {"host": "smtp://not a host", "port": "seven", "security": "bogus"}
    assert admin_client.post(CREATE, {**EXTERNAL, **junk}).status_code == 302
    assert admin_client.post(CREATE, {**INTERNAL, "domain": "not a domain"}).status_code == 302
    assert SmtpAccount.objects.count() == 2


def test_provider_query_preselects(admin_client):
    form = admin_client.get(CREATE, {"provider": "external"}).context["form"]
    assert form.provider_value == "external"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"port": "70000"}, "port", "less than or equal to 65535"),
        ({"port": "0"}, "port", "greater than or equal to 1"),
        ({"host": "smtp://smtp.example.com"}, "host", "without a scheme"),
        ({"host": "smtp.example.com/path"}, "host", "without a path"),
        ({"host": "smtp.example.com:587"}, "host", "Port field"),
        ({"host": "smtp example.com"}, "host", "cannot contain spaces"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"from_name": "Evil\r\nBcc: x@example.com"}, "from_name", "line breaks"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"password": ""}, "password", "Enter the password"),
        ({"security": "none"}, "security", "never sent over an unencrypted"),
    ],
)
def test_bad_input_gets_a_field_error_and_no_password_echo(admin_client, changes, field, message):
    response = admin_client.post(CREATE, {**INTERNAL, **changes})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors[field])
    assert "app-password-1" not in response.content.decode()
    assert not SmtpAccount.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("host", "smtp://x"), ("port", "seven")])
def test_one_mistake_gets_one_message(admin_client, field, value):
    response = admin_client.post(CREATE, {**INTERNAL, field: value})
    assert len(response.context["form"].errors[field]) == 1


def test_external_email_must_belong_to_the_domain(admin_client):
    response = admin_client.post(CREATE, {**EXTERNAL, "email": "news@other.com"})
    assert "Use an address at mg.example.com" in response.context["form"].errors["email"][0]


def test_international_host_is_stored_as_punycode(admin_client):
    admin_client.post(CREATE, {**INTERNAL, "host": "smtp.bücher.example"})
    assert SmtpAccount.objects.get().host == "smtp.xn--bcher-kva.example"


def test_names_are_unique(admin_client, make_account):
    make_account(name="Support desk")
    response = admin_client.post(CREATE, INTERNAL)
    assert "already exists" in response.context["form"].errors["name"][0]


def test_edit_keeps_the_stored_password_when_left_blank(admin_client, make_account):
    account = make_account(name="Desk", password="kept-secret")
    url = reverse("smtp_accounts:update", args=[account.pk])
    page = admin_client.get(url).content.decode()
    assert "kept-secret" not in page and account.password_encrypted not in page
    data = {**INTERNAL, "name": "Desk renamed", "host": account.host, "username": account.username,
            "password": ""}
    assert admin_client.post(url, data).status_code == 302
    account.refresh_from_db()
    assert (account.name, account.get_password()) == ("Desk renamed", "kept-secret")


@pytest.mark.parametrize(
    "change", [{"host": "smtp.other.com"}, {"port": "465"}, {"username": "x@example.com"},
               {"security": "ssl"}]
)
def test_edit_that_moves_the_password_requires_it_again(admin_client, make_account, change):
    account = make_account(name="Desk", password="kept-secret")
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "host": account.host, "username": account.username, "password": ""}
    data.update(change)
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Type the password again" in response.context["form"].errors["password"][0]


def test_edit_of_connection_makes_the_account_unverified(admin_client, make_account):
    from django.utils import timezone

    account = make_account(name="Desk")
    SmtpAccount.objects.filter(pk=account.pk).update(verified_at=timezone.now())
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "host": "smtp.other.com", "username": account.username, "password": "new"}
    response = admin_client.post(url, data, follow=True)
    assert "must be tested again" in response.content.decode()
    account.refresh_from_db()
    assert account.verified_at is None


def test_delete_asks_then_deletes(admin_client, make_account):
    account = make_account(name="Old relay")
    url = reverse("smtp_accounts:delete", args=[account.pk])
    assert "Delete “Old relay”?" in admin_client.get(url).content.decode()
    assert SmtpAccount.objects.filter(pk=account.pk).exists()
    response = admin_client.post(url, follow=True)
    assert "“Old relay” was deleted" in response.content.decode()
    assert not SmtpAccount.objects.filter(pk=account.pk).exists()


def test_delete_needs_the_delete_permission(client, make_user, make_account):
    account = make_account()
    client.force_login(make_user("view", "change"))
    assert client.post(reverse("smtp_accounts:delete", args=[account.pk])).status_code == 403
    assert SmtpAccount.objects.filter(pk=account.pk).exists()


def test_csrf_is_enforced(make_account, admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(CREATE, INTERNAL).status_code == 403


def test_a_nul_in_the_search_is_ignored_not_a_500(admin_client, make_account):
    make_account(name="Desk")
    response = admin_client.get(LIST, {"q": "De\x00sk"})
    assert response.status_code == 200


def test_an_out_of_range_port_is_a_typo_not_a_moved_account(admin_client, make_account):
    account = make_account(name="Desk", password="kept-secret")
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "host": account.host, "username": account.username, "password": "",
            "port": "70000"}
    errors = admin_client.post(url, data).context["form"].errors
    assert list(errors) == ["port"]


def test_clearing_the_user_drops_the_stored_password(admin_client, make_account):
    account = make_account(name="Relay", password="kept-secret")
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "name": "Relay", "host": account.host, "username": "", "password": ""}
    assert admin_client.post(url, data).status_code == 302
    account.refresh_from_db()
    assert not account.has_password


def test_an_international_mailgun_domain_accepts_its_own_addresses(admin_client):
    data = {**EXTERNAL, "domain": "例え.jp", "email": "news@例え.jp"}
    assert admin_client.post(CREATE, data).status_code == 302
    assert SmtpAccount.objects.get().domain == "xn--r8jz45g.jp"



def test_a_paused_account_says_until_when_and_why(admin_client, make_account):
    account = make_account(name="Gmail Support", verified_at=timezone.now())
    until = timezone.now() + timedelta(minutes=30)
    pause_account(account, until, "The server throttled it: 421 4.7.0 Try again later")
    page = admin_client.get(LIST).content.decode()
    assert f"Paused until {timezone.localtime(until):%H:%M}" in page
    assert "421 4.7.0 Try again later" in page
    resume_account(account)
    assert "Paused until" not in admin_client.get(LIST).content.decode()
