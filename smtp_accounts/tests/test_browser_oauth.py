"""Sign in with Google in Chromium: the local OAuth server redirects back, the list says
*Signed in*, and the Test pop-up's code arrives over XOAUTH2.

Set SCREENSHOT_DIR (e.g. /tmp/shots) to save pictures at 1366 and 390 px wide.
"""

import re

import pytest
from playwright.sync_api import expect

from smtp_accounts.models import SmtpAccount
from smtp_accounts.tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LONG_NAME = "Customer service desk for the northern region (Gmail)"


def shot(page, name):
    screenshot(page, f"oauth-{name}", widths=(1366, 390))


def code_in(server):
    body = server.messages[-1].message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)


def test_sign_in_with_google_then_test_and_confirm(
    logged_in_page, live_server, xoauth2_server, oauth_server, oauth_account_for
):
    page = logged_in_page
    account = oauth_account_for(xoauth2_server, name=LONG_NAME)
    page.goto(f"{live_server.url}/settings/smtp-accounts/{account.pk}/edit/")
    expect(page.get_by_text("Sign in needed")).to_be_visible()
    expect(page.locator('[data-field="password"]')).to_be_hidden()  # an OAuth account
    shot(page, "1-edit-sign-in-needed")

    page.get_by_role("button", name="Sign in with Google").click()

    page.wait_for_url("**/settings/smtp-accounts/")
    row = page.get_by_role("row", name=LONG_NAME)
    expect(row.get_by_text("Signed in", exact=True)).to_be_visible()
    signed_in = f"“{LONG_NAME}” is signed in as crm-sender@example.com"
    expect(page.get_by_text(signed_in)).to_be_visible()
    shot(page, "2-list-signed-in")

    row.get_by_role("link", name="Test").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Send").click()
    expect(dialog.get_by_role("status")).to_contain_text("Sent to admin@example.com")
    assert xoauth2_server.messages[-1].login == "crm-sender@example.com"
    dialog.get_by_label("Confirmation code").fill(code_in(xoauth2_server))
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()
    expect(row.get_by_text("Verified", exact=True)).to_be_visible()
    assert SmtpAccount.objects.get(pk=account.pk).is_ready

    html = page.content()
    assert not any(token in html for token in oauth_server.live_tokens())


def test_a_cancelled_sign_in_shows_what_to_do(
    logged_in_page, live_server, xoauth2_server, oauth_server, oauth_account_for
):
    page = logged_in_page
    oauth_server.deny()
    account = oauth_account_for(xoauth2_server, name=LONG_NAME)
    page.goto(f"{live_server.url}/settings/smtp-accounts/{account.pk}/edit/")
    page.get_by_role("button", name="Sign in with Google").click()

    expect(page.get_by_role("heading", name="Sign-in did not finish")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("cancelled at Google")
    shot(page, "3-cancelled")
    page.get_by_role("link", name=f"Back to {LONG_NAME}").click()
    expect(page.get_by_text("Sign in needed")).to_be_visible()


def test_the_gmail_preset_suggests_sign_in_with_google(logged_in_page, live_server, oauth_server):
    page = logged_in_page
    page.goto(f"{live_server.url}/settings/smtp-accounts/new/?provider=internal")
    page.get_by_label("Provider preset").select_option(label="Gmail")
    expect(page.get_by_label("Sign-in")).to_have_value("google")
    expect(page.locator('[data-field="password"]')).to_be_hidden()

    page.get_by_label("Sign-in").select_option("password")
    expect(page.get_by_text("Gmail takes only an")).to_be_visible()
    expect(page.get_by_text("Yahoo takes only an")).to_be_hidden()
    page.get_by_label("Account Name").fill(LONG_NAME)
    page.get_by_role("button", name="Save").click()  # no User, no Email: errors beside fields
    expect(page.get_by_text("Please correct the fields marked below.")).to_be_visible()
    shot(page, "4-gmail-password-error")
