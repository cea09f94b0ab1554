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
        "port", "username", "security", "is_active", "auth_method", "signed_in",
        "verified_at", "updated_at",
        "priority", "max_per_minute", "max_per_hour", "max_per_day", "paused_until",
    ]
    assert data["auth_method"] == "password" and data["signed_in"] is False
    assert "s3cret-value" not in str(data) and not any("password" in key for key in data)


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


def test_names_are_unique_ignoring_case_in_the_form_and_the_database(make_account):
    from django.db import IntegrityError, transaction

    from smtp_accounts.forms import SmtpAccountForm
    from smtp_accounts.models import NAME_TAKEN, SmtpAccount

    first = make_account(name="Dev inbox")
    form = SmtpAccountForm({**_form_data(), "name": "dev INBOX"})
    assert not form.is_valid() and form.errors["name"] == [NAME_TAKEN]
    # Renaming an account to another spelling of its own name is fine.
    edit = SmtpAccountForm({**_form_data(), "name": "DEV Inbox", "password": "x"},
                           instance=first)
    assert edit.is_valid(), edit.errors
    with pytest.raises(IntegrityError), transaction.atomic():
        SmtpAccount.objects.create(name="DEV INBOX", email="a@example.com")


def _form_data():
    return {"provider": "internal", "name": "Desk", "account_type": "system",
            "host": "smtp.example.com", "port": "587", "username": "u@example.com",
            "password": "pw-123", "security": "starttls", "email": "u@example.com"}


@pytest.mark.django_db(transaction=True)
def test_two_admins_saving_one_new_name_at_once_one_gets_the_form_error(db):
    """Both forms pass their check before either saves; the database decides, and the loser
    gets a ValidationError on the name (the page shows it beside the field), never a 500."""
    import threading

    from django.core.exceptions import ValidationError
    from django.db import connection

    from smtp_accounts.forms import SmtpAccountForm
    from smtp_accounts.models import NAME_TAKEN, SmtpAccount

    if connection.vendor != "postgresql":
        pytest.skip("a real concurrent insert needs PostgreSQL (SQLite locks the whole file)")
    forms = [SmtpAccountForm({**_form_data(), "name": name}) for name in ("Dev inbox",
                                                                          "dev INBOX")]
    assert all(form.is_valid() for form in forms)
    start, outcomes = threading.Barrier(2), []

    def save(form):
        start.wait()
        try:
            form.save()
            outcomes.append("saved")
        except ValidationError as err:
            outcomes.append(err.message_dict["name"])
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == sorted(["saved", [NAME_TAKEN]], key=str)
    assert SmtpAccount.objects.count() == 1
