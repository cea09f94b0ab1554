"""The History section of the edit page and the Deleted accounts pages."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from smtp_accounts import audit, services
from smtp_accounts.models import AccountEvent

EDIT = {"provider": "internal", "name": "Relay", "account_type": "system",
        "host": "smtp.other.example", "port": "587", "username": "crm@example.com",
        "password": "typed-secret-2", "security": "starttls", "email": "crm@example.com",
        "from_name": "CRM", "is_active": "on"}  # fmt: skip


def edit_page(client, account, **params):
    return client.get(reverse("smtp_accounts:update", args=[account.pk]), params).content.decode()


def test_the_edit_page_shows_who_changed_what_newest_first(admin_client, make_account):
    account = make_account(name="Relay", password="stored-secret")
    with audit.acting_as("ops-lead", ip="192.0.2.7"):
        audit.record(account, audit.Action.CREATED)
    admin_client.post(reverse("smtp_accounts:update", args=[account.pk]), EDIT)
    account.refresh_from_db()

    page = edit_page(admin_client, account)
    history = page[page.index('id="history"'):]
    assert history.index("Changed") < history.index("Created")
    assert "by <strong>admin</strong>" in history and "from 127.0.0.1" in history
    assert "by <strong>ops-lead</strong>" in history and "from 192.0.2.7" in history
    assert "<dt>Host</dt><dd>smtp.example.com → smtp.other.example</dd>" in history
    assert "<dt>Password</dt><dd>changed</dd>" in history
    for secret in ("stored-secret", "typed-secret-2", account.password_encrypted):
        assert secret not in page


def test_history_shows_choices_by_their_labels(admin_client, make_account):
    account = make_account(name="Relay", security="ssl", port=465)
    services.save_account(account)  # nothing changed: no entry
    account.security, account.is_active = "starttls", False
    services.save_account(account)
    history = edit_page(admin_client, account)
    assert "<dd>SSL/TLS (port 465) → STARTTLS (port 587)</dd>" in history
    assert "<dt>Is Active?</dt><dd>yes → no</dd>" in history


def test_history_pages_twenty_entries_at_a_time(admin_client, make_account):
    account = make_account(name="Relay")
    start = timezone.now()
    AccountEvent.objects.bulk_create(
        AccountEvent(account=account, account_name="Relay", actor=f"user{n}", action="changed",
                     at=start + timedelta(seconds=n))
        for n in range(25)
    )  # fmt: skip
    first, second = edit_page(admin_client, account), edit_page(admin_client, account,
                                                                history_page=2)
    assert first.count("data-history-entry") == 20 and second.count("data-history-entry") == 5
    assert first.index("user24") < first.index("user5") and "user4<" not in first
    assert "user4</strong>" in second and "user0</strong>" in second
    assert "1–20 of 25" in first and 'href="?history_page=2#history"' in first
    assert edit_page(admin_client, account, history_page="junk").count("data-history-entry") == 20


def test_an_account_without_entries_says_what_will_appear(admin_client, make_account):
    page = edit_page(admin_client, make_account(name="Relay"))
    assert "No changes recorded yet." in page


def test_a_deleted_account_keeps_its_history_on_the_deleted_accounts_page(
    admin_client, make_account
):
    account = make_account(name="Gone relay", password="stored-secret")
    token = account.password_encrypted
    admin_client.post(reverse("smtp_accounts:update", args=[account.pk]),
                      {**EDIT, "name": "Gone relay"})  # fmt: skip
    admin_client.post(reverse("smtp_accounts:delete", args=[account.pk]))
    make_account(name="Still here")

    listing = admin_client.get(reverse("smtp_accounts:deleted")).content.decode()
    assert "Gone relay" in listing and "Still here" not in listing
    deletion = AccountEvent.objects.get(action="deleted")
    page = admin_client.get(reverse("smtp_accounts:deleted_history", args=[deletion.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "Deleted " in text and "by admin from 127.0.0.1" in text
    assert text.count("data-history-entry") == 2  # the edit and the deletion
    assert "<dd>smtp.example.com → smtp.other.example</dd>" in text
    for secret in ("stored-secret", "typed-secret-2", token):
        assert secret not in text


def test_the_list_links_to_the_deleted_accounts(admin_client):
    page = admin_client.get(reverse("smtp_accounts:list")).content.decode()
    assert f'href="{reverse("smtp_accounts:deleted")}"' in page
    empty = admin_client.get(reverse("smtp_accounts:deleted")).content.decode()
    assert "No deleted accounts" in empty


def test_deleted_accounts_need_the_view_permission(client, make_user, make_account):
    account = make_account(name="Gone")
    services.delete_account(account)
    deletion = AccountEvent.objects.get()
    urls = [reverse("smtp_accounts:deleted"),
            reverse("smtp_accounts:deleted_history", args=[deletion.pk])]
    client.force_login(make_user(username="nobody"))
    assert [client.get(url).status_code for url in urls] == [403, 403]
    client.force_login(make_user("view", username="viewer"))
    assert [client.get(url).status_code for url in urls] == [200, 200]


def test_a_living_accounts_entry_is_not_a_deleted_account_page(admin_client, make_account):
    account = make_account(name="Here")
    event = audit.record(account, audit.Action.CREATED)
    url = reverse("smtp_accounts:deleted_history", args=[event.pk])
    assert admin_client.get(url).status_code == 404
