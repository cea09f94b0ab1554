"""The accounts list in Chromium at a laptop's and a phone's width: it fits, and every
account's state and actions are on screen."""

import pytest
from playwright.sync_api import expect

from smtp_accounts.tests.fixtures.browser import open_new_account_form
from smtp_accounts.tests.fixtures.browser import screenshot as shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LONG_NAME = "N" * 100
WIDTHS = [1366, 390]


def open_list(page, live_server, width, query=""):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/settings/smtp-accounts/{query}")


def right_edge(locator):
    box = locator.bounding_box()
    return box["x"] + box["width"]


@pytest.fixture
def long_accounts(make_account):
    make_account(name=LONG_NAME, host="relay-" + "h" * 60 + ".example.com",
                 email="someone." + "e" * 60 + "@example.com")
    make_account(name="Support desk", host="smtp.gmail.com")


@pytest.mark.parametrize("width", WIDTHS)
def test_long_names_wrap_and_the_table_fits_its_card(logged_in_page, live_server,
                                                     long_accounts, width):
    page = logged_in_page
    open_list(page, live_server, width)
    shot(page, f"list-long-names-{width}")
    card = page.locator(".card-flush")
    # The card would scroll sideways if the table were wider than it.
    assert card.evaluate("c => c.scrollWidth <= c.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    row = page.locator("[data-account-row]").filter(has_text="NNNN")
    expect(row.get_by_title(LONG_NAME)).to_be_visible()
    for name in ("Test", "Edit", "Delete"):
        button = row.get_by_role("link", name=name, exact=True)
        expect(button).to_be_visible()
        assert right_edge(button) <= width


def test_on_a_phone_each_account_is_a_card_with_its_state_and_actions(
        logged_in_page, live_server, long_accounts):
    page = logged_in_page
    open_list(page, live_server, 390)
    row = page.locator("[data-account-row]").filter(has_text="Support desk")
    cell = row.locator("[data-verified-cell]")
    expect(cell).to_be_visible()
    assert right_edge(cell) <= 390
    # A card: the row spans the width, its cells are stacked, not side by side.
    host = row.locator("td[data-label=Host]")
    email = row.locator("td[data-label=Email]")
    assert email.bounding_box()["y"] > host.bounding_box()["y"]
    assert row.bounding_box()["width"] > 300


@pytest.mark.parametrize("width", WIDTHS)
def test_without_a_mailgun_key_the_form_and_the_row_say_so(logged_in_page, live_server,
                                                           make_account, settings, width):
    settings.MAILGUN_API_KEY = ""
    make_account(name="Campaigns", provider="external", domain="mg.example.com",
                 email="news@mg.example.com", host="", port=None, username="", password="")
    page = logged_in_page
    open_list(page, live_server, width)
    row = page.locator("[data-account-row]").filter(has_text="Campaigns")
    expect(row.get_by_text("Mailgun is not configured")).to_be_visible()
    shot(page, f"list-mailgun-missing-{width}")
    open_new_account_form(page)
    notice = page.get_by_text("Mailgun is not configured on this CRM")
    expect(notice).to_be_hidden()
    page.get_by_label("External Provider").check()
    expect(notice).to_be_visible()
    shot(page, f"form-mailgun-missing-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_each_row_reads_one_state_and_the_state_filter_and_sort_work(
        logged_in_page, live_server, make_account, width):
    from django.utils import timezone

    make_account(name="Billing relay", verified_at=timezone.now())
    make_account(name="Alerts")
    make_account(name="Old newsletter", is_active=False)
    page = logged_in_page
    open_list(page, live_server, width)
    expect(page.locator("[data-account-row]").filter(has_text="Billing relay")
           .get_by_text("Ready", exact=True)).to_be_visible()
    alerts = page.locator("[data-account-row]").filter(has_text="Alerts")
    expect(alerts.get_by_text("Needs test", exact=True)).to_be_visible()
    expect(alerts.get_by_text("Active", exact=True)).to_have_count(0)
    shot(page, f"list-states-{width}")
    page.get_by_label("State").select_option(label="Needs test")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("[data-account-row]")).to_have_count(1)
    page.get_by_label("State").select_option(label="Any state")
    page.get_by_role("button", name="Filter").click()
    if width > 640:  # On a phone the header row is hidden; the sort still works by URL.
        page.get_by_role("link", name="Account Name").click()
        expect(page.locator("[data-account-row]").first).to_contain_text("Old newsletter")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_view_only_user_meets_errors_inside_the_layout(page, live_server, make_user,
                                                       make_account, width):
    from smtp_accounts.tests.fixtures.browser import login

    make_user("view", username="viewer")
    for number in range(26):
        make_account(name=f"Desk {number:02}")
    page.set_default_timeout(10_000)
    page.set_viewport_size({"width": width, "height": 900})
    login(page, live_server, username="viewer", password="pass-123-456")
    row = page.locator("[data-account-row]").first
    expect(row.get_by_text("View only")).to_be_visible()
    page.goto(f"{live_server.url}/settings/smtp-accounts/?page=99")
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    page.goto(f"{live_server.url}/settings/smtp-accounts/new/")
    expect(page.get_by_role("heading", name="You can’t do that here")).to_be_visible()
    expect(page.locator(".menu").get_by_role("link", name="SMTP Accounts")).to_be_visible()
    shot(page, f"error-403-{width}")
    page.goto(f"{live_server.url}/settings/smtp-accounts/no-such-page/")
    expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    page.get_by_role("link", name="Back to SMTP Accounts").click()
    expect(page.get_by_role("heading", name="SMTP Accounts", exact=True)).to_be_visible()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_form_marks_required_fields_and_the_preset_follows_the_host(
        logged_in_page, live_server, width):
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/settings/smtp-accounts/new/")
    page.get_by_label("Internal Provider").check()
    for name in ("host", "port"):
        label = page.locator(f'[data-field="{name}"] > label')
        assert label.evaluate("l => getComputedStyle(l, '::after').content") == '" *"'
    page.get_by_label("Provider preset").select_option(label="Outlook")
    expect(page.get_by_label("Host")).to_have_value("smtp-mail.outlook.com")
    page.get_by_label("Host").fill("relay.example.com")
    expect(page.get_by_label("Provider preset")).to_have_value("")
    page.get_by_label("Account Name").fill("L" * 120)
    expect(page.get_by_label("Account Name")).to_have_value("L" * 100)
    expect(page.get_by_text("Up to 100 characters")).to_be_visible()
    page.get_by_label("User").fill("desk@example.com")
    page.get_by_label("Password").fill("typed-secret")
    page.get_by_label("Email", exact=True).fill("not-an-email")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Type the password again: it is not kept")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_value("")
    shot(page, f"form-error-{width}")
    assert "typed-secret" not in page.content()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_edit_form_has_test_and_check_connection(logged_in_page, live_server, smtp_server,
                                                     smtp_account_for, width):
    account = smtp_account_for(smtp_server, name="Billing relay " + "x" * 60)
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/settings/smtp-accounts/{account.pk}/edit/")
    page.get_by_role("link", name="Test", exact=True).click()
    dialog = page.locator("[data-test-dialog]")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Send")).to_be_visible()
    shot(page, f"edit-test-dialog-{width}")
    dialog.get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Check connection").click()
    expect(page.get_by_role("heading", name="Check connection")).to_be_visible()
    expect(page.get_by_text("Every step passed")).to_be_visible()
    steps = page.locator("[data-check-step]")
    expect(steps.first).to_contain_text(" ms")
    assert steps.count() >= 4
    shot(page, f"check-result-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert smtp_server.messages == []


@pytest.mark.parametrize("width", WIDTHS)
def test_host_and_port_never_break_inside_the_port(logged_in_page, live_server, make_account,
                                                   width):
    make_account(name="Gmail desk " + "g" * 40, host="smtp.gmail.com", port=587)
    make_account(name="Relay", host="mail-relay-eu-west.example-company.com", port=2525)
    page = logged_in_page
    open_list(page, live_server, width)
    ports = page.locator("[data-port]")
    expect(ports.first).to_be_visible()
    for index in range(ports.count()):
        # One box per line the text spans: a port split over two lines would have two.
        assert ports.nth(index).evaluate("p => p.getClientRects().length") == 1
    shot(page, f"list-host-port-{width}")
