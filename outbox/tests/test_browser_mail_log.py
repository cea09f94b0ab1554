"""The Mail Log in Chromium: an admin finds a refused message, reads why, and retries it.

Set SCREENSHOT_DIR (e.g. /work/notes/shots-maillog) to save each page at 1366 and 390 px.
"""


import pytest
from django.utils import timezone
from playwright.sync_api import expect

from outbox.models import OutboundMessage
from smtp_accounts import services
from smtp_accounts.tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LONG_NAME = "Password resets and account notices for the EMEA customer portal (primary relay)"


def shots(page, name):
    screenshot(page, name, widths=(1366, 390))


def test_find_a_refused_message_read_why_and_retry_it(logged_in_page, smtp_server,
                                                      smtp_account_for):  # fmt: skip
    page = logged_in_page
    smtp_account_for(smtp_server, name=LONG_NAME, verified_at=timezone.now())
    services.send_email(account_type="system", to=["anna@example.org"], subject="Welcome aboard",
                        body="Hello")  # fmt: skip
    smtp_server.reject_recipient("gone@example.org", "550 5.1.1 No such user here")
    services.send_email(
        account_type="system",
        to=["gone@example.org"],
        subject="Reset your password",
        body="https://crm/reset/secret-token",
    )
    message = OutboundMessage.objects.get(subject="Reset your password")
    assert message.status == "failed"  # no broker: delivered (and refused) in this process

    page.get_by_role("link", name="SMTP Accounts").click()
    expect(page.locator("[data-account-health]")).to_contain_text("1 sent · 1 failed")
    shots(page, "accounts-list")
    page.locator(".menu").get_by_role("link", name="Mail Log").click()
    expect(page.get_by_role("heading", name="Mail Log")).to_be_visible()
    expect(page.get_by_role("row", name="Welcome aboard")).to_be_visible()
    shots(page, "mail-log")

    page.get_by_label("Status").select_option(label="Failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name="Welcome aboard")).to_have_count(0)
    shots(page, "mail-log-failed")

    page.get_by_role("link", name="Reset your password").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    expect(page.locator("[data-last-error]")).to_contain_text("550")
    expect(page.locator("[data-attempt]").first).to_contain_text("550")
    expect(page.locator("[data-attempt]").first).to_contain_text("No such user here")
    assert "secret-token" not in page.content()
    shots(page, "message-failed")

    smtp_server.rejected.clear()  # the address is fixed; the server accepts it now
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("is queued again")).to_be_visible()
    expect(page.locator(".page-header .badge")).to_have_text("Sent")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.locator("[data-attempt]")).to_have_count(2)  # the refusal is kept
    shots(page, "message-sent")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["anna@example.org"],
                                                          ["gone@example.org"]]  # fmt: skip


def test_retry_failed_asks_first_then_says_how_many(logged_in_page, smtp_server,
                                                    smtp_account_for):  # fmt: skip
    page = logged_in_page
    account = smtp_account_for(smtp_server, name=LONG_NAME, verified_at=timezone.now())
    smtp_server.reject_recipient("gone@example.org", "550 5.1.1 No such user here")
    for subject in ("Invoice 1", "Invoice 2"):
        services.send_email(account_type="system", to=["gone@example.org"], subject=subject,
                            body="x")  # fmt: skip
    page.goto(
        page.url.replace(
            "/settings/smtp-accounts/", f"/settings/mail-log/?account={account.pk}&status=failed"
        )
    )
    page.get_by_role("link", name="Retry failed").click()
    expect(page.get_by_role("heading", name=f"Retry failed mail of “{LONG_NAME}”?")).to_be_visible()
    expect(page.get_by_text("2 failed messages")).to_be_visible()
    shots(page, "retry-failed-confirm")
    smtp_server.rejected.clear()
    page.get_by_role("button", name="Retry 2 messages").click()
    expect(page.get_by_text(f"2 failed messages of “{LONG_NAME}” queued again.")).to_be_visible()
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
