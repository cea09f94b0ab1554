"""System checks: FERNET_KEYS, SMTP_ACCOUNTS_CA_FILE, and Mailgun accounts without a key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from smtp_accounts import checks

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def ids(messages):
    return [message.id for message in messages]


@pytest.mark.parametrize("keys", [[], "", ["not-a-key"], [Fernet.generate_key().decode(), "x"]])
def test_malformed_fernet_keys_are_an_error_with_a_hint(settings, keys):
    settings.FERNET_KEYS = keys
    errors = checks.check_fernet_keys()
    assert ids(errors) and set(ids(errors)) == {"smtp_accounts.E001"}
    assert "Fernet.generate_key()" in errors[0].hint


def test_good_fernet_keys_pass(settings):
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    assert checks.check_fernet_keys() == []


def test_manage_py_check_fails_on_a_bad_key(settings):
    settings.FERNET_KEYS = ["nope"]
    with pytest.raises(SystemCheckError, match=r"smtp_accounts.E001.*key #1 is not a valid"):
        call_command("check")


def test_unreadable_ca_file_is_an_error(settings, tmp_path):
    settings.SMTP_ACCOUNTS_CA_FILE = str(tmp_path / "missing.pem")
    [error] = checks.check_ca_file()
    assert error.id == "smtp_accounts.E002" and "missing.pem cannot be loaded" in error.msg
    assert "PEM" in error.hint


def test_a_ca_file_that_is_not_pem_is_an_error(settings, tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n")
    settings.SMTP_ACCOUNTS_CA_FILE = str(garbage)
    assert ids(checks.check_ca_file()) == ["smtp_accounts.E002"]


def test_a_real_ca_file_or_none_passes(settings, smtp_test_certificates):
    settings.SMTP_ACCOUNTS_CA_FILE = str(smtp_test_certificates.ca_file)
    assert checks.check_ca_file() == []
    settings.SMTP_ACCOUNTS_CA_FILE = ""
    assert checks.check_ca_file() == []


@pytest.fixture
def mailgun_account(make_account):
    return make_account(name="News", provider="external", domain="mg.example.com",
                        email="news@mg.example.com", host="", port=None, username="")


def test_mailgun_accounts_without_api_key_warn_when_the_database_is_checked(
    settings, mailgun_account
):
    settings.MAILGUN_API_KEY = ""
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = ""
    api_key, signing_key = checks.check_mailgun_settings(databases=["default"])
    assert api_key.id == "smtp_accounts.W001"
    assert "1 external (Mailgun) account(s)" in api_key.msg
    assert "MAILGUN_API_KEY" in api_key.hint
    assert signing_key.id == "smtp_accounts.W002"
    assert "bounce webhooks are refused" in signing_key.msg


def test_no_database_is_touched_unless_django_asks(settings, mailgun_account):
    settings.MAILGUN_API_KEY = ""
    assert checks.check_mailgun_settings(databases=None) == []


def test_no_warning_with_a_key_or_without_mailgun_accounts(settings, make_account):
    settings.MAILGUN_API_KEY = settings.MAILGUN_WEBHOOK_SIGNING_KEY = ""
    make_account()
    assert checks.check_mailgun_settings(databases=["default"]) == []
    settings.MAILGUN_API_KEY = "key-123"
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = "signing-key-456"
    make_account(name="News", provider="external", domain="mg.example.com",
                 email="news@mg.example.com", host="", port=None, username="")
    assert checks.check_mailgun_settings(databases=["default"]) == []


def test_check_database_default_reports_the_warning(settings, mailgun_account, capsys):
    settings.MAILGUN_API_KEY = ""
    call_command("check", "--database", "default")
    assert "smtp_accounts.W001" in capsys.readouterr().err


def manage(tmp_path, *args, database_url):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "subprocess-secret-key-0123456789",
        "FERNET_KEYS": Fernet.generate_key().decode(),
    }
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args], env=env, cwd=tmp_path, check=False,
        capture_output=True, text=True, timeout=120,
    )


def test_checking_a_database_before_migrate_or_unreachable_never_crashes(tmp_path):
    fresh = manage(tmp_path, "check", "--database", "default",
                   database_url=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert fresh.returncode == 0, fresh.stderr
    down = manage(tmp_path, "check", "--database", "default",
                  database_url="postgres://postgres@127.0.0.1:9/nowhere")
    assert down.returncode == 0, down.stderr
    assert "Traceback" not in fresh.stderr + down.stderr
