"""`manage.py rotate_fernet_keys`: old key → [new, old] → rotate → [new], passwords intact."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from smtp_accounts import crypto
from smtp_accounts.models import SmtpAccount


class Terminal(io.StringIO):
    def isatty(self):
        return True


def rotate(*args, stdout=None):
    out = stdout or io.StringIO()
    call_command("rotate_fernet_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def old_key(settings):
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    return settings.FERNET_KEYS[0]


@pytest.fixture
def accounts(old_key, make_account):
    """Three accounts with passwords under the old key, and one without a password."""
    made = [make_account(name=f"A{n}", password=f"secret-{n}") for n in range(3)]
    made.append(make_account(name="No password", username="", password=""))
    return made


def tokens():
    return dict(SmtpAccount.objects.values_list("name", "password_encrypted"))


def passwords():
    return {a.name: a.get_password() for a in SmtpAccount.objects.exclude(password_encrypted="")}


def test_rotation_moves_every_secret_to_the_new_key(settings, old_key, accounts):
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]
    output = rotate()
    assert "3 re-encrypted, 0 already on the first key, 0 unreadable" in output
    settings.FERNET_KEYS = [new_key]  # the old key is gone: everything must still open
    assert passwords() == {"A0": "secret-0", "A1": "secret-1", "A2": "secret-2"}


def test_rotation_keeps_last_update_as_it_was(settings, old_key, accounts):
    before = dict(SmtpAccount.objects.values_list("name", "updated_at"))
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    rotate()
    assert dict(SmtpAccount.objects.values_list("name", "updated_at")) == before


def test_a_second_run_changes_nothing(settings, old_key, accounts):
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    rotate()
    after_first = tokens()
    assert "0 re-encrypted, 3 already on the first key" in rotate()
    assert tokens() == after_first


def test_an_interrupted_rotation_is_finished_by_running_it_again(settings, old_key, accounts):
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]
    # What an interrupted run leaves behind: the first row rotated, the others not.
    first = SmtpAccount.objects.get(name="A0")
    SmtpAccount.objects.filter(pk=first.pk).update(
        password_encrypted=crypto.rotate(first.password_encrypted)
    )
    assert "2 re-encrypted, 1 already on the first key" in rotate()
    settings.FERNET_KEYS = [new_key]
    assert passwords() == {"A0": "secret-0", "A1": "secret-1", "A2": "secret-2"}


def test_dry_run_counts_but_changes_nothing(settings, old_key, accounts):
    before = tokens()
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    assert "3 would be re-encrypted" in rotate("--dry-run")
    assert tokens() == before


def test_a_secret_no_key_opens_is_named_and_left_alone(settings, old_key, accounts, make_account):
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]  # a key nobody used
    lost = make_account(name="Lost", password="x")
    lost_token = lost.password_encrypted
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"1 account\(s\) could not be re-encrypted"):
        call_command("rotate_fernet_keys", stdout=io.StringIO(), stderr=err)
    assert f"Account 'Lost' (id {lost.pk}): no key in FERNET_KEYS opens" in err.getvalue()
    assert tokens()["Lost"] == lost_token
    settings.FERNET_KEYS = [new_key]
    assert all(crypto.is_current(tokens()[f"A{n}"]) for n in range(3))


def test_a_terminal_gets_a_progress_bar(settings, old_key, accounts):
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    output = rotate(stdout=Terminal())
    assert "\r[" + "#" * 30 + "] 3/3" in output


def test_a_pipe_gets_plain_counts(settings, old_key, accounts, monkeypatch):
    monkeypatch.setattr("smtp_accounts.management.commands.rotate_fernet_keys.BATCH", 2)
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    output = rotate()
    assert "2/3 secrets processed" in output.splitlines()
    assert "\r" not in output


def test_the_bounce_mailbox_password_is_rotated_too(settings, old_key, make_account):
    account = make_account(name="With mailbox", password="smtp-1", bounce_host="imap.example.com")
    account.set_bounce_password("imap-1")
    account.save()
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]

    assert "2 re-encrypted, 0 already on the first key, 0 unreadable (of 2" in rotate()

    settings.FERNET_KEYS = [new_key]
    account.refresh_from_db()
    assert (account.get_password(), account.get_bounce_password()) == ("smtp-1", "imap-1")


def test_an_unreadable_bounce_password_is_named_as_such(settings, old_key, make_account):
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]  # a key nobody keeps
    account = make_account(name="Lost mailbox", password="", username="")
    account.set_bounce_password("imap-1")
    account.save()
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old_key]
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"1 account\(s\) could not be re-encrypted"):
        call_command("rotate_fernet_keys", stdout=io.StringIO(), stderr=err)

    assert "no key in FERNET_KEYS opens its IMAP password" in err.getvalue()
    assert "type the IMAP password again on the account's page" in err.getvalue()


def test_rotation_moves_the_sign_in_tokens_too(settings, old_key, oauth_server, make_account):
    from smtp_accounts import oauth
    from smtp_accounts.tests.fixtures.oauth_server import sign_in

    account = sign_in(make_account(name="Gmail", password="", auth_method="google",
                                   username="crm-sender@example.com"))
    token = oauth.access_token(account)
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, old_key]

    assert "2 re-encrypted" in rotate()

    settings.FERNET_KEYS = [new_key]
    assert oauth.access_token(SmtpAccount.objects.get(pk=account.pk)) == token
