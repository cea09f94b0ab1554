"""Fixtures for every test. Real servers live in smtp_accounts/tests/fixtures/, one module each."""

import pytest
from django.contrib.auth.models import Permission, User

from smtp_accounts.models import Provider, Security, SmtpAccount

pytest_plugins = [
    "smtp_accounts.tests.fixtures.smtp_server",
    "smtp_accounts.tests.fixtures.mailgun_server",
    "smtp_accounts.tests.fixtures.worker",
    "smtp_accounts.tests.fixtures.browser",
]


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    # The manifest storage needs collectstatic; tests serve the source files instead.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _close_kept_connections():
    # A delivery keeps each account's connection open in this process (outbox's
    # services/connections.py); one test's servers must not serve the next test's sends.
    yield
    from outbox.services import close_connections

    close_connections()


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def make_user(db):
    """make_user("view", "change") → a staff-less user with just those account permissions."""

    def make(*actions, username="clerk"):
        user = User.objects.create_user(username, f"{username}@example.com", "pass-123-456")
        codenames = [f"{action}_smtpaccount" for action in actions]
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        return user

    return make


@pytest.fixture
def make_account(db):
    """make_account(**fields) → a saved internal account (password "s3cret" unless given)."""

    def make(password="s3cret", **fields):
        values = {
            "name": f"Account {SmtpAccount.objects.count() + 1}",
            "account_type": "system",
            "provider": Provider.INTERNAL,
            "email": "crm@example.com",
            "from_name": "CRM",
            "host": "smtp.example.com",
            "port": 587,
            "username": "crm@example.com",
            "security": Security.STARTTLS,
        }
        values.update(fields)
        account = SmtpAccount(**values)
        if password and account.provider == Provider.INTERNAL and account.username:
            account.set_password(password)
        account.save()
        return SmtpAccount.objects.get(pk=account.pk)

    return make
