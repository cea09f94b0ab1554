from django.urls import reverse

from smtp_accounts.models import SmtpAccount


def test_admin_lists_accounts_without_the_password(admin_client, make_account):
    account = make_account(name="Relay", password="admin-hidden-secret")
    listing = admin_client.get(reverse("admin:smtp_accounts_smtpaccount_changelist"))
    assert "Relay" in listing.content.decode()
    change = admin_client.get(reverse("admin:smtp_accounts_smtpaccount_change", args=[account.pk]))
    page = change.content.decode()
    assert change.status_code == 200
    assert "admin-hidden-secret" not in page and account.password_encrypted not in page


def test_admin_add_uses_the_same_rules_and_encrypts(admin_client, admin_user):
    data = {"provider": "internal", "name": "From admin", "account_type": "system",
            "host": "smtp.example.com", "port": "587", "username": "u@example.com",
            "password": "typed-in-admin", "security": "starttls", "email": "u@example.com",
            "is_active": "on"}
    response = admin_client.post(reverse("admin:smtp_accounts_smtpaccount_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    account = SmtpAccount.objects.get(name="From admin")
    assert account.get_password() == "typed-in-admin"
    assert account.updated_by == admin_user


def test_tests_cannot_be_made_by_hand(admin_client):
    assert admin_client.get(reverse("admin:smtp_accounts_testemail_add")).status_code == 403
