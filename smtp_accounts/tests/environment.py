"""Loaded by pytest.ini (`-p`) before Django reads settings: fixed test keys and env."""

import os

# Must be set before Django reads crm/settings.py.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("FERNET_KEYS", "rJ3vX9nXy0mHq0mF1u0x7dXWbTt3l6Kq4m8w2y5Zb1c=")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server + Playwright touch the ORM
# Empty, not unset: a developer's `.env` (read without overwriting) must not leak into tests.
# Tests set what they need explicitly.
for _name in ("CELERY_BROKER_URL", "MAILGUN_API_KEY", "SMTP_ACCOUNTS_ALLOWED_NETWORKS",
              "SMTP_ACCOUNTS_CA_FILE"):
    os.environ[_name] = ""
