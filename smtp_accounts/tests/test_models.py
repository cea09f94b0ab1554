import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from smtp_accounts.models import SmtpAccount


def test_password_is_encrypted_in_the_database_column(make_account):
    account = make_account(password="correct horse battery")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_encrypted FROM smtp_accounts_smtpaccount WHERE id = %s",
                       [account.pk])
        stored = cursor.fetchone()[0]
    assert "correct horse" not in stored
    assert account.get_password() == "correct horse battery"


def test_readiness_needs_active_and_verified(make_account):
    from django.utils import timezone

    account = make_account()
    assert not account.is_ready
    account.verified_at = timezone.now()
    assert account.is_ready
    account.is_active = False
    assert not account.is_ready


def test_from_address_quotes_the_name(make_account):
    account = make_account(from_name="Support, Inc.", email="desk@example.com")
    assert account.from_address == '"Support, Inc." <desk@example.com>'


def test_changed_fields_compares_with_what_was_loaded(make_account):
    account = make_account(host="smtp.example.com")
    assert account.changed_fields(SmtpAccount.CONNECTION_FIELDS) == set()
    account.host = "smtp.other.com"
    account.from_name = "Not a connection field"
    assert account.changed_fields(SmtpAccount.CONNECTION_FIELDS) == {"host"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"provider": "external", "domain": ""}, "domain", "Enter the Mailgun sending domain"),
        ({"provider": "external", "domain": "mg.example.com", "email": "a@b.com"}, "email",
         "Use an address at mg.example.com"),
        ({"host": "", "port": 587}, "host", "Enter the server's host name"),
        ({"port": None}, "port", "Enter the server's port"),
        ({"security": "none"}, "security", "never sent over an unencrypted connection"),
    ],
)
def test_clean_states_what_each_provider_needs(fields, field, message):
    values = {"name": "A", "email": "a@example.com", "host": "smtp.example.com", "port": 587,
              "username": "a@example.com", "provider": "internal", **fields}
    with pytest.raises(ValidationError) as raised:
        SmtpAccount(**values).clean()
    assert message in " ".join(raised.value.message_dict[field])


def test_an_email_on_a_subdomain_of_the_mailgun_domain_is_fine():
    account = SmtpAccount(name="A", provider="external", domain="Example.com",
                          email="news@mg.example.com")
    account.clean()
    assert account.domain == "example.com"


@pytest.fixture
def one_of_each_state(make_account):
    """{state value: account} — one account in each state the list shows."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    verified = now - timedelta(hours=1)
    return {
        "ready": make_account(name="Ready one", verified_at=verified),
        "needs_test": make_account(name="New one"),
        "inactive": make_account(name="Off one", is_active=False, verified_at=verified),
        "failing": make_account(name="Refused one", verified_at=verified,
                                last_error="The server refused the login.", last_error_at=now),
        # An error older than the verification that followed it is fixed: Ready again.
        "ready_again": make_account(name="Fixed one", verified_at=now, last_error="Old error",
                                    last_error_at=verified),
    }


def test_each_account_has_one_state_and_the_filter_agrees(one_of_each_state):
    from smtp_accounts.models import state_filter

    expected = {"ready_again": "ready"}
    for key, account in one_of_each_state.items():
        state = expected.get(key, key)
        assert account.state == state
        assert SmtpAccount.objects.filter(state_filter(state), pk=account.pk).exists()
    by_state = {
        state: sorted(SmtpAccount.objects.filter(state_filter(state)).values_list("name",
                                                                                flat=True))
        for state in ("ready", "needs_test", "inactive", "failing")
    }
    assert by_state == {"ready": ["Fixed one", "Ready one"], "needs_test": ["New one"],
                        "inactive": ["Off one"], "failing": ["Refused one"]}
