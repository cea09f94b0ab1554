"""The Suppressions page in Chromium: a bounced address is listed with the message that
caused it, an admin removes it, and mail goes to it again.

Set SCREENSHOT_DIR (e.g. /work/notes/shots-suppressions) to save each page at 1366 and 390 px.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from outbox.models import Suppression
from outbox.services import suppressions
from smtp_accounts.services import send_email
from smtp_accounts.tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shots(page, name):
    screenshot(page, name, widths=(1366, 390))


def test_a_bounced_address_is_listed_and_removed(logged_in_page, live_server, make_message,
                                                 make_account):  # fmt: skip
    page = logged_in_page
    page.goto(f"{live_server.url}/settings/suppressions/")
    expect(page.get_by_role("heading", name="No address is suppressed")).to_be_visible()
    shots(page, "suppressions-empty")

    account = make_account(name="Newsletter relay", verified_at=timezone.now())
    message = make_message(account, to=["gone.forever@example.org"],
                           subject="Your December newsletter")  # fmt: skip
    suppressions.suppress(
        "gone.forever@example.org", "bounce", message=message,
        note="550 5.1.1 <gone.forever@example.org>: Recipient address rejected: User unknown "
        "in virtual mailbox table",
    )  # fmt: skip
    suppressions.suppress("spam.reporter@example.com", "complaint")
    suppressions.suppress("ceo@example.net", "manual", note="Asked by phone to get no mail")

    page.locator(".menu").get_by_role("link", name="Suppressions").click()
    expect(page.get_by_role("heading", name="Suppressions")).to_be_visible()
    expect(page.locator("[data-suppression]")).to_have_count(3)
    row = page.locator('[data-suppression="gone.forever@example.org"]')
    expect(row).to_contain_text("Bounce")
    expect(row).to_contain_text("User unknown")
    shots(page, "suppressions")

    page.get_by_role("searchbox").fill("spam")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("[data-suppression]")).to_have_count(1)
    page.get_by_role("link", name="Clear").click()

    row.get_by_role("link", name="Your December newsletter").click()
    expect(page.get_by_role("heading", name="Your December newsletter")).to_be_visible()
    page.go_back()

    page.get_by_role("link", name="Remove gone.forever@example.org").click()
    expect(page.get_by_role("heading", name="Remove gone.forever@example.org?")).to_be_visible()
    shots(page, "suppression-remove")
    page.get_by_role("button", name="Remove").click()

    expect(page.get_by_text("gone.forever@example.org is off the suppression list")).to_be_visible()
    expect(page.locator("[data-suppression]")).to_have_count(2)
    shots(page, "suppressions-removed")
    assert not Suppression.objects.filter(email="gone.forever@example.org").exists()


def test_a_message_to_a_suppressed_address_says_why_it_was_not_sent(
    logged_in_page, live_server, smtp_server, smtp_account_for
):
    page = logged_in_page
    smtp_account_for(smtp_server, name="System relay", verified_at=timezone.now())
    suppressions.suppress("gone.forever@example.org", "bounce", note="550 5.1.1 User unknown")
    message = send_email(account_type="system", to=["gone.forever@example.org"],
                         subject="Your password was changed", body="Hi")  # fmt: skip

    page.goto(f"{live_server.url}/settings/mail-log/{message.pk}/")
    expect(page.locator(".page-header .badge")).to_have_text("Failed")
    expect(page.locator("[data-last-error]")).to_contain_text("on the suppression list")
    expect(page.locator("[data-attempt]")).to_have_count(1)
    expect(page.locator("[data-attempt]")).to_contain_text("Suppressed")
    shots(page, "message-suppressed")
    assert smtp_server.messages == []
