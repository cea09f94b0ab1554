import re
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
    headers = [re.sub(r"<[^>]+>|[▲▼]", "", th).strip()
               for th in re.findall(r"<th[^>]*>(.*?)</th>", page, re.S)]
    assert headers == ["Account Name", "Host", "Email", "Active", "Verified", "Last Update",
                       "Actions"]
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
    assert "An account with this name exists" in response.context["form"].errors["name"][0]


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



def test_the_mailgun_notice_shows_only_without_a_key(admin_client, make_account, settings):
    make_account(name="Campaigns", provider="external", domain="mg.example.com",
                 email="news@mg.example.com", host="", port=None, username="", password="")
    settings.MAILGUN_API_KEY = ""
    assert "Mailgun is not configured" in admin_client.get("/settings/smtp-accounts/").text
    assert "Mailgun is not configured" in admin_client.get("/settings/smtp-accounts/new/").text
    settings.MAILGUN_API_KEY = "key-test"
    assert "Mailgun is not configured" not in admin_client.get("/settings/smtp-accounts/").text
    assert "Mailgun is not configured" not in admin_client.get(
        "/settings/smtp-accounts/new/").text


def test_state_filter_and_sorting_survive_paging(admin_client, make_account):
    for number in range(30):
        make_account(name=f"Desk {number:02}")
    make_account(name="Off", is_active=False)
    page = admin_client.get(LIST, {"state": "needs_test", "sort": "-name"})
    names = [a.name for a in page.context["object_list"]]
    assert names[0] == "Desk 29" and "Off" not in names and len(names) == 25
    html = page.content.decode()
    assert "state=needs_test&amp;sort=-name&amp;page=2" in html
    page2 = admin_client.get(LIST, {"state": "needs_test", "sort": "-name", "page": 2})
    assert [a.name for a in page2.context["object_list"]][-1] == "Desk 00"
    # The column header links keep the filter and flip the order.
    assert 'href="?state=needs_test&amp;sort=name"' in html
    assert [a.name for a in admin_client.get(LIST, {"state": "inactive"}).context[
        "object_list"]] == ["Off"]
    newest = admin_client.get(LIST, {"sort": "-updated"}).context["object_list"][0]
    assert newest.name == "Off"


def test_a_new_row_shows_one_state_needs_test(admin_client, make_account):
    account = make_account(name="Fresh")
    row = admin_client.get(LIST).content.decode().split("data-account-row=")[1]
    assert f'"{account.pk}"' in row and "Needs test" in row
    assert ">Active<" not in row and "Ready" not in row


def test_forbidden_and_missing_pages_are_inside_the_crm_layout(client, make_user):
    client.force_login(make_user("view", "change"))
    forbidden = client.get(CREATE)
    assert forbidden.status_code == 403
    missing = client.get(reverse("smtp_accounts:update", args=[999]))
    assert missing.status_code == 404
    for response, heading in ((forbidden, "You can’t do that here"), (missing, "Nothing here")):
        html = response.content.decode()
        assert heading in html and "System Settings" in html and ">SMTP Accounts</a>" in html


def test_a_view_only_user_reads_view_only_in_actions(client, make_user, make_account):
    make_account(name="Desk")
    client.force_login(make_user("view"))
    row = client.get(LIST).content.decode().split("data-account-row=")[1]
    assert "View only" in row and ">Edit<" not in row


def test_a_page_past_the_end_shows_the_last_page(admin_client, make_account):
    for number in range(27):
        make_account(name=f"Desk {number:02}")
    response = admin_client.get(LIST, {"page": 99})
    assert response.status_code == 200
    assert response.context["page_obj"].number == 2
    assert "Page 2 of 2" in response.content.decode()
    assert admin_client.get(LIST, {"page": "x"}).context["page_obj"].number == 1


def test_the_500_page_reveals_nothing(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/settings/smtp-accounts/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html and "SMTP Accounts" in html
    assert "Traceback" not in html and "settings" not in html.replace("/settings/", "")


def test_losing_a_race_for_the_name_gives_the_form_back(admin_client):
    """Another admin saves "Dev inbox" after this form was checked but before it is saved."""
    from django.db.models.signals import pre_save

    def the_other_admin(sender, instance, **kwargs):
        pre_save.disconnect(the_other_admin, sender=SmtpAccount)
        SmtpAccount.objects.create(name="Dev inbox", email="other@example.com")

    pre_save.connect(the_other_admin, sender=SmtpAccount)
    try:
        response = admin_client.post(CREATE, {**INTERNAL, "name": "dev INBOX"})
    finally:
        pre_save.disconnect(the_other_admin, sender=SmtpAccount)
    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "An account with this name exists (names are unique ignoring case)."]
    assert not SmtpAccount.objects.filter(name="dev INBOX").exists()


def field_html(page, name):
    """The HTML of one field's block on the form page."""
    return page.split(f'data-field="{name}"')[1].split('<div class="field')[0]


def test_the_form_marks_provider_fields_required_and_says_the_name_limit(admin_client):
    page = admin_client.get(CREATE).content.decode()
    for name in ("host", "port", "domain", "name"):
        assert "is-required" in page.split(f'data-field="{name}"')[0].rsplit("<div", 1)[1]
    assert 'maxlength="100"' in field_html(page, "name")
    assert "Up to 100 characters" in field_html(page, "name")


def test_after_an_error_elsewhere_the_password_field_says_to_type_it_again(admin_client):
    page = admin_client.post(CREATE, {**INTERNAL, "email": "not-an-email"}).content.decode()
    password = field_html(page, "password")
    assert "Type the password again: it is not kept when the form has errors." in password
    assert "app-password-1" not in page


def test_a_password_error_on_edit_is_not_contradicted_by_leave_blank(admin_client,
                                                                     make_account):
    account = make_account(name="Desk")
    data = {**INTERNAL, "name": "Desk", "host": "smtp.other.example.com", "password": ""}
    page = admin_client.post(reverse("smtp_accounts:update", args=[account.pk]),
                             data).content.decode()
    password = field_html(page, "password")
    assert "Type the password again" in password and "Leave blank" not in password


def test_a_500_report_with_frame_variables_never_holds_the_typed_password(
        admin_client, settings):
    """An error inside form.save with DEBUG off: Django's technical 500 report (what reporters
    that read frames see) shows no frame holding the typed password."""
    import sys

    from django.core.signals import got_request_exception
    from django.db.models.signals import pre_save
    from django.views.debug import ExceptionReporter

    settings.DEBUG = False
    reports = []

    def explode(sender, **kwargs):
        raise RuntimeError("the disk is full")

    def report(sender, request, **kwargs):
        reports.append(ExceptionReporter(request, *sys.exc_info()).get_traceback_html())

    pre_save.connect(explode, sender=SmtpAccount)
    got_request_exception.connect(report)
    admin_client.raise_request_exception = False
    try:
        response = admin_client.post(CREATE, {**INTERNAL, "password": "typed-Secret-42"})
    finally:
        pre_save.disconnect(explode, sender=SmtpAccount)
        got_request_exception.disconnect(report)
    assert response.status_code == 500
    [html] = reports
    assert "the disk is full" in html and "save_account" in html and "in save" in html
    assert "typed-Secret-42" not in html


def test_the_delete_page_names_the_account_that_sends_next(admin_client, make_account):
    from django.utils import timezone

    first = make_account(name="Main relay", verified_at=timezone.now())
    backup = make_account(name="Backup relay", verified_at=timezone.now(),
                          email="backup@example.com")
    page = admin_client.get(reverse("smtp_accounts:delete", args=[first.pk])).content.decode()
    assert "After the delete, System Account mail goes through <strong>“Backup relay”</strong>" \
        in page and "unless" not in page
    last = admin_client.get(reverse("smtp_accounts:delete", args=[backup.pk]))
    assert "goes through <strong>“Main relay”</strong>" in last.content.decode()
    first.delete()
    alone = admin_client.get(reverse("smtp_accounts:delete", args=[backup.pk])).content.decode()
    assert "No other active and verified account sends System Account mail" in alone


def test_a_paused_account_says_until_when_and_why(admin_client, make_account):
    account = make_account(name="Gmail Support", verified_at=timezone.now())
    until = timezone.now() + timedelta(minutes=30)
    pause_account(account, until, "The server throttled it: 421 4.7.0 Try again later")
    page = admin_client.get(LIST).content.decode()
    assert f"Paused until {timezone.localtime(until):%H:%M}" in page
    assert "421 4.7.0 Try again later" in page
    resume_account(account)
    assert "Paused until" not in admin_client.get(LIST).content.decode()
