"""The account pages in Chromium, driven by the labels an admin sees."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from smtp_accounts.models import SmtpAccount
from smtp_accounts.services import pause_account
from smtp_accounts.tests.fixtures.browser import open_new_account_form
from smtp_accounts.tests.fixtures.browser import screenshot as shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_smtp_accounts(page):
    page.get_by_role("link", name="SMTP Accounts").click()
    expect(page.get_by_role("heading", name="SMTP Accounts", exact=True)).to_be_visible()


def test_create_edit_and_delete_accounts_by_their_labels(logged_in_page):
    page = logged_in_page
    expect(page.locator(".menu").get_by_text("System Settings")).to_be_visible()
    open_smtp_accounts(page)
    expect(page.get_by_text("No SMTP accounts yet")).to_be_visible()
    shot(page, "list-empty")

    # An internal (SMTP) account, with the Gmail preset filling host, port and TLS.
    open_new_account_form(page)
    page.get_by_label("Internal Provider").check()
    expect(page.get_by_label("Domain")).to_be_hidden()
    page.get_by_label("Account Name").fill("Support desk")
    page.get_by_label("Account Type").select_option(label="Customer Service")
    page.get_by_label("Provider preset").select_option(label="Gmail")
    expect(page.get_by_label("Host")).to_have_value("smtp.gmail.com")
    expect(page.get_by_label("Port")).to_have_value("587")
    page.get_by_label("User").fill("desk@example.com")
    page.get_by_label("Password").fill("app-password-1")
    page.get_by_label("Email", exact=True).fill("desk@example.com")
    page.get_by_label("From Name").fill("Demo Support")
    shot(page, "form-internal")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("“Support desk” was created")).to_be_visible()

    # An external (Mailgun) account: the SMTP fields disappear.
    open_new_account_form(page)
    page.get_by_label("External Provider").check()
    expect(page.get_by_label("Host")).to_be_hidden()
    page.get_by_label("Account Name").fill("Campaigns")
    page.get_by_label("Account Type").select_option(label="Campaigns")
    page.get_by_label("Domain").fill("mg.example.com")
    page.get_by_label("Email", exact=True).fill("wrong@other.com")
    page.get_by_label("From Name").fill("Demo News")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Use an address at mg.example.com")).to_be_visible()
    shot(page, "form-external-error")
    page.get_by_label("Email", exact=True).fill("news@mg.example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("“Campaigns” was created")).to_be_visible()
    expect(page.get_by_role("cell", name="Mailgun · mg.example.com")).to_be_visible()
    shot(page, "list")
    assert "app-password-1" not in page.content()

    # Edit the internal one: a new name, password left blank, so it is kept.
    page.get_by_role("row", name="Support desk").get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Password")).to_have_value("")
    page.get_by_label("Account Name").fill("Support desk (EU)")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("“Support desk (EU)” was saved")).to_be_visible()
    assert SmtpAccount.objects.get(name="Support desk (EU)").get_password() == "app-password-1"

    # Delete the external one.
    page.get_by_role("row", name="Campaigns").get_by_role("link", name="Delete").click()
    shot(page, "delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("“Campaigns” was deleted")).to_be_visible()
    assert list(SmtpAccount.objects.values_list("name", flat=True)) == ["Support desk (EU)"]


@pytest.mark.parametrize("width", [1366, 390])
def test_presets_fill_the_limits_and_a_paused_row_says_why(logged_in_page, width):
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 860})
    open_smtp_accounts(page)
    open_new_account_form(page)
    page.get_by_label("Internal Provider").check()
    page.get_by_label("Provider preset").select_option(label="Outlook")
    expect(page.get_by_label("Messages per minute")).to_have_value("30")
    expect(page.get_by_label("Messages per day")).to_have_value("10000")
    expect(page.get_by_label("Messages per hour")).to_have_value("")
    expect(page.get_by_label("Connections at once")).to_have_value("3")
    page.get_by_label("Messages per hour").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Enter 1 or more, or leave it blank for no limit.")).to_be_visible()
    shot(page, f"form-limits-error-{width}")
    page.get_by_role("link", name="Cancel").click()

    account = SmtpAccount.objects.create(
        name="Customer Service Gmail — Europe, Middle East and Africa (second line)",
        host="smtp.gmail.com", port=587, email="support@example.com",
        verified_at=timezone.now(),
    )
    pause_account(account, timezone.now() + timedelta(minutes=42),
                  "The server throttled it: 550 5.4.5 Daily user sending quota exceeded.")
    page.reload()
    expect(page.get_by_text("Paused until")).to_be_visible()
    expect(page.get_by_text("Daily user sending quota exceeded")).to_be_visible()
    shot(page, f"list-paused-{width}")
