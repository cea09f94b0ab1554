"""The Bounce mailbox (IMAP) fields on the account pages: optional, write-only password."""

from django.urls import reverse

from smtp_accounts.models import SmtpAccount
from smtp_accounts.tests.test_views_accounts import CREATE, EXTERNAL, INTERNAL

MAILBOX = {
    "bounce_host": "imap.example.com",
    "bounce_port": "",
    "bounce_username": "bounces@example.com",
    "bounce_password": "imap-Secret-7",
}


def edit_url(account):
    return reverse("smtp_accounts:update", args=[account.pk])


def test_a_new_internal_account_keeps_its_mailbox_with_the_password_encrypted(admin_client):
    response = admin_client.post(CREATE, {**INTERNAL, **MAILBOX})

    assert response.status_code == 302
    account = SmtpAccount.objects.get(name=INTERNAL["name"])
    assert (account.bounce_host, account.bounce_port) == ("imap.example.com", 993)
    assert account.bounce_username == "bounces@example.com"
    assert account.get_bounce_password() == "imap-Secret-7"
    assert "imap-Secret-7" not in account.bounce_password_encrypted


def test_the_section_is_on_the_page_and_the_password_is_never_shown(admin_client, make_account):
    account = make_account(bounce_host="imap.example.com", bounce_username="b@example.com")
    account.set_bounce_password("never-Shown-9")
    account.save()

    page = admin_client.get(edit_url(account)).content.decode()

    assert "Bounce mailbox (IMAP)" in page and 'name="bounce_host"' in page
    assert "never-Shown-9" not in page and account.bounce_password_encrypted not in page
    assert "A password is stored" in page


def test_a_mailbox_without_user_or_password_is_refused_beside_the_fields(admin_client):
    data = {**INTERNAL, **MAILBOX, "bounce_username": "", "bounce_password": ""}

    response = admin_client.post(CREATE, data)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Enter the IMAP user of the bounce mailbox." in page
    assert "Enter the IMAP password of the bounce mailbox." in page
    assert not SmtpAccount.objects.exists()


def test_a_blank_password_keeps_the_stored_one_until_the_mailbox_moves(admin_client):
    admin_client.post(CREATE, {**INTERNAL, **MAILBOX})
    account = SmtpAccount.objects.get()
    kept = {**INTERNAL, **MAILBOX, "password": "", "bounce_password": ""}

    assert admin_client.post(edit_url(account), kept).status_code == 302
    assert SmtpAccount.objects.get().get_bounce_password() == "imap-Secret-7"

    moved = admin_client.post(edit_url(account), {**kept, "bounce_host": "imap.evil.example"})
    assert "Type the IMAP password again" in moved.content.decode()
    assert SmtpAccount.objects.get().bounce_host == "imap.example.com"


def test_changing_the_mailbox_leaves_the_account_verified(admin_client, make_account):
    from django.utils import timezone

    account = make_account(verified_at=timezone.now())
    data = {**INTERNAL, "name": account.name, "host": account.host, "username": account.username,
            "email": account.email, "password": "", **MAILBOX}

    assert admin_client.post(edit_url(account), data).status_code == 302
    assert SmtpAccount.objects.get().is_verified  # reading bounces does not change sending


def test_clearing_the_host_drops_the_mailbox_and_its_password(admin_client):
    admin_client.post(CREATE, {**INTERNAL, **MAILBOX})
    account = SmtpAccount.objects.get()

    data = {**INTERNAL, "password": "", "bounce_host": "", "bounce_username": "x@example.com",
            "bounce_password": ""}
    assert admin_client.post(edit_url(account), data).status_code == 302

    account.refresh_from_db()
    assert (account.bounce_host, account.bounce_username) == ("", "")
    assert not account.has_bounce_password


def test_a_post_without_the_fields_keeps_the_mailbox(admin_client):
    admin_client.post(CREATE, {**INTERNAL, **MAILBOX})
    account = SmtpAccount.objects.get()

    assert admin_client.post(edit_url(account), {**INTERNAL, "password": ""}).status_code == 302

    account.refresh_from_db()
    assert account.bounce_host == "imap.example.com"
    assert account.get_bounce_password() == "imap-Secret-7"


def test_an_external_account_has_no_mailbox(admin_client):
    assert admin_client.post(CREATE, {**EXTERNAL, **MAILBOX}).status_code == 302

    account = SmtpAccount.objects.get()
    assert account.bounce_host == "" and not account.has_bounce_password


def test_the_mailbox_shows_its_last_error(admin_client, make_account):
    account = make_account(bounce_host="imap.example.com", bounce_username="b@example.com")
    account.record_bounce_check("The bounce mailbox imap.example.com:993 refused the login.")

    page = admin_client.get(edit_url(account)).content.decode()

    assert "failed: The bounce mailbox imap.example.com:993 refused the login." in page
