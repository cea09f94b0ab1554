import pytest

from smtp_accounts import services


def test_find_account_by_id_or_name(make_account):
    account = make_account(name="Support desk")
    assert services.find_account(str(account.pk)) == account
    assert services.find_account(" Support desk ") == account


@pytest.mark.parametrize("identifier", ["²", "٣", "Nobody", "12\x00"])
def test_unknown_or_odd_identifiers_are_not_found(make_account, identifier):
    make_account(name="Support desk")
    with pytest.raises(services.AccountNotFound, match="No SMTP account has the id or name"):
        services.find_account(identifier)


def test_a_name_that_is_another_accounts_id_is_refused_not_guessed(make_account):
    first = make_account(name="Desk")
    make_account(name=str(first.pk))
    with pytest.raises(services.AccountNotFound, match="both an account's id and another"):
        services.find_account(str(first.pk))


def test_account_as_dict_has_the_contract_keys_and_no_secret(make_account):
    data = services.account_as_dict(make_account(password="s3cret-value"))
    assert list(data) == [
        "id", "name", "account_type", "provider", "domain", "email", "from_name", "host",
        "port", "username", "security", "is_active", "verified_at", "updated_at",
        "priority", "max_per_minute", "max_per_hour", "max_per_day", "paused_until",
    ]
    assert "s3cret-value" not in str(data) and "password" not in str(data)


def test_an_edit_does_not_undo_a_confirmation_made_meanwhile(make_account):
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount

    account = make_account(name="Desk")  # an admin loads the account to edit it ...
    SmtpAccount.objects.filter(pk=account.pk).update(verified_at=timezone.now())  # ... a confirm
    account.from_name = "New name"
    services.save_account(account)
    account.refresh_from_db()
    assert account.verified_at is not None and account.from_name == "New name"


def test_a_new_host_or_password_makes_the_account_unverified(make_account):
    from django.utils import timezone

    account = make_account(name="Desk", verified_at=timezone.now())
    services.save_account(account, password="new-one")
    account.refresh_from_db()
    assert account.verified_at is None and account.get_password() == "new-one"
