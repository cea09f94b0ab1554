"""Start-up configuration, checked in fresh processes as an operator would meet it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 30 + "-long-random-production-secret-value",
    "FERNET_KEYS": Fernet.generate_key().decode(),
    "DJANGO_ALLOWED_HOSTS": "crm.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",  # no connection is made by `check`
}


def manage(*args, **env):
    """Run manage.py in a clean environment (no .env values leak in: all are given)."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_warns_that_without_a_broker_mail_is_sent_in_requests():
    production = {key: value for key, value in PRODUCTION.items() if key != "CELERY_BROKER_URL"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 1
    assert "outbox.W001" in result.stderr and "sent inside web requests" in result.stderr
    assert "retries wait for a `celery -A crm beat` process" in result.stderr


def test_check_deploy_is_clean_with_production_values():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FERNET_KEYS": ""}, "FERNET_KEYS is not set. Make a key with"),
        ({"FERNET_KEYS": "not-a-key"}, "FERNET_KEYS key #1 is not a valid Fernet key"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
    ],
)
def test_missing_or_malformed_keys_stop_the_app_with_a_howto(env, message):
    result = manage("check", **{**PRODUCTION, **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_models_and_migrations_agree(db):
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 if not
