"""The Test pop-up in Chromium, driven by the labels an admin sees, against real aiosmtpd.

Set SCREENSHOT_DIR (e.g. /tmp/shots) to save a picture of each state of the pop-up.
"""

import re
import socket

import pytest
from playwright.sync_api import expect

from crm.celery import app as celery_app
from smtp_accounts import devinbox, services
from smtp_accounts.models import TestEmail
from smtp_accounts.tests.fixtures.browser import login, open_new_account_form, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name):
    screenshot(page, f"test-dialog-{name}", full_page=False)


def code_in(server):
    body = server.messages[-1].message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"^Confirmation code: (\d{6})\r?$", body, re.MULTILINE).group(1)


def verified_badge(page, account_name):
    return page.get_by_role("row", name=account_name).get_by_text("Verified", exact=True)


def open_test_dialog(page, account_name):
    """System Settings > SMTP Accounts, then Test on the account's row; return the pop-up."""
    page.locator(".menu").get_by_role("link", name="SMTP Accounts").click()
    page.get_by_role("row", name=account_name).get_by_role("link", name="Test").click()
    dialog = page.get_by_role("dialog", name=f"Test “{account_name}”")
    expect(dialog).to_be_visible()
    return dialog


def test_an_admin_verifies_an_account_in_the_pop_up(
    logged_in_page, smtp_server, smtp_account_for
):
    page = logged_in_page
    smtp_account_for(smtp_server, name="Support desk")
    dialog = open_test_dialog(page, "Support desk")
    expect(dialog.get_by_label("Email")).to_have_value("admin@example.com")
    shot(page, "1-open")

    dialog.get_by_label("Email").fill("boss@example.com")
    dialog.get_by_role("button", name="Send").click()
    expect(dialog.get_by_role("status")).to_contain_text("Sent to boss@example.com")
    expect(dialog.get_by_label("Confirmation code")).to_be_focused()
    shot(page, "2-sent")

    code = code_in(smtp_server)
    dialog.get_by_label("Confirmation code").fill(f"{(int(code) + 1) % 10**6:06d}")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.get_by_role("alert")).to_have_text("That code is not right. 4 tries left.")
    shot(page, "3-wrong-code")

    dialog.get_by_label("Confirmation code").fill(code)
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()
    expect(verified_badge(page, "Support desk")).to_be_visible()
    expect(page.get_by_text("“Support desk” is verified")).to_be_visible()
    shot(page, "4-verified")
    page.reload()
    expect(verified_badge(page, "Support desk")).to_be_visible()


def test_a_refused_login_shows_in_the_pop_up(logged_in_page, smtp_server, smtp_account_for):
    page = logged_in_page
    smtp_server.fail("auth", "535 5.7.8 Authentication credentials invalid")
    smtp_account_for(smtp_server, name="Old relay")
    dialog = open_test_dialog(page, "Old relay")

    dialog.get_by_role("button", name="Send").click()

    status = dialog.get_by_role("status")
    expect(status).to_contain_text("Could not send the test email to admin@example.com")
    expect(status).to_contain_text("The server rejected the login (535 5.7.8")
    expect(status).to_contain_text("Failed")
    expect(dialog.get_by_label("Confirmation code")).to_be_hidden()
    shot(page, "5-login-refused")

    # Nothing went out, so nothing holds the next try up (the 30-second wait follows only
    # test emails that were sent).
    def is_send(response):
        return response.url.endswith("/test/") and response.request.method == "POST"

    with page.expect_response(is_send) as sent:
        dialog.get_by_role("button", name="Send").click()
    assert sent.value.status == 200  # a throttled send answers 429
    expect(status).to_contain_text("The server rejected the login")
    expect(dialog.get_by_text("before sending another test email")).to_be_hidden()
    shot(page, "6-retried")

    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("row", name="Old relay").get_by_role("link", name="Test").click()
    expect(status).to_contain_text("Last test (")
    expect(status).to_contain_text("The server rejected the login")
    shot(page, "6b-reopened")


def test_five_wrong_codes_burn_it_and_the_pop_up_asks_for_a_new_test(
    logged_in_page, smtp_server, smtp_account_for
):
    page = logged_in_page
    smtp_account_for(smtp_server, name="Campaigns")
    dialog = open_test_dialog(page, "Campaigns")
    dialog.get_by_role("button", name="Send").click()
    expect(dialog.get_by_role("status")).to_contain_text("Sent to admin@example.com")
    wrong = f"{(int(code_in(smtp_server)) + 1) % 10**6:06d}"

    for tries_left in (4, 3, 2, 1):
        dialog.get_by_label("Confirmation code").fill(wrong)
        dialog.get_by_role("button", name="Confirm").click()
        expect(dialog.get_by_role("alert")).to_contain_text(f"{tries_left} tr")
    dialog.get_by_label("Confirmation code").fill(wrong)
    dialog.get_by_role("button", name="Confirm").click()

    expect(dialog.get_by_role("status")).to_contain_text("that was the last try")
    expect(dialog.get_by_role("status")).to_contain_text("Send a new test")
    expect(dialog.get_by_label("Confirmation code")).to_be_hidden()
    shot(page, "7-burned")


@pytest.fixture
def queued_tasks():
    """Tasks stay in the (in-memory) queue, as when no worker has picked them up yet."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


def test_the_pop_up_follows_a_queued_test_until_it_is_sent(
    logged_in_page, smtp_server, smtp_account_for, queued_tasks
):
    page = logged_in_page
    smtp_account_for(smtp_server, name="Newsletter")
    dialog = open_test_dialog(page, "Newsletter")

    with page.expect_response(lambda answer: answer.request.method == "POST") as sent:
        dialog.get_by_role("button", name="Send").click()
    assert sent.value.json()["test"]["state"] == "queued"
    expect(dialog.get_by_role("status")).to_contain_text("Sending the test email to admin@")
    expect(dialog.get_by_role("status")).to_contain_text("Queued")
    shot(page, "0-queued")
    services.deliver_test_email(TestEmail.objects.get().pk)  # what the worker would do

    expect(dialog.get_by_role("status")).to_contain_text("Sent to admin@example.com")
    expect(dialog.get_by_label("Confirmation code")).to_be_visible()


def test_without_javascript_the_same_steps_work_as_pages(
    browser, live_server, admin_user, smtp_server, smtp_account_for
):
    smtp_account_for(smtp_server, name="Plain pages")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    login(page, live_server)

    page.get_by_role("row", name="Plain pages").get_by_role("link", name="Test").click()
    expect(page.get_by_label("Email")).to_have_value("admin@example.com")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status")).to_contain_text("Sent to admin@example.com")
    shot(page, "8-no-js-sent")
    page.get_by_label("Confirmation code").fill(code_in(smtp_server))
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_text("“Plain pages” is verified")).to_be_visible()
    expect(verified_badge(page, "Plain pages")).to_be_visible()
    context.close()


@pytest.fixture
def running_dev_inbox(settings, tmp_path):
    """The dev inbox on a free port, DEBUG on and loopback allowed, as `make run` sets up."""
    settings.DEBUG = True
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.SMTP_ACCOUNTS_DEV_INBOX_DIR = tmp_path / "dev-inbox"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.SMTP_ACCOUNTS_DEV_INBOX_PORT = sock.getsockname()[1]
    inbox = devinbox.start_inbox()
    yield inbox
    inbox.stop()


def test_a_newcomer_verifies_an_account_through_the_dev_inbox(logged_in_page, running_dev_inbox):
    page = logged_in_page
    open_new_account_form(page)
    page.get_by_label("Internal Provider").check()
    page.get_by_label("Account Name").fill("Local inbox")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(running_dev_inbox.port))
    page.get_by_label("TLS/SSL").select_option(label="None (no encryption)")
    page.get_by_label("Email", exact=True).fill("crm@example.com")
    page.get_by_role("button", name="Save").click()
    dialog = open_test_dialog(page, "Local inbox")
    dialog.get_by_role("button", name="Send").click()
    expect(dialog.get_by_role("status")).to_contain_text("Sent to admin@example.com")

    inbox_page = page.context.new_page()
    inbox_page.goto(page.url.split("/settings/")[0] + "/settings/smtp-accounts/dev-inbox/")
    mail = inbox_page.get_by_role("article").filter(has_text="Test email")
    expect(mail).to_contain_text("Confirmation code: ")
    shot(inbox_page, "9-dev-inbox")
    code = re.search(r"Confirmation code: (\d{6})", mail.inner_text()).group(1)
    inbox_page.close()

    dialog.get_by_label("Confirmation code").fill(code)
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()
    expect(verified_badge(page, "Local inbox")).to_be_visible()
