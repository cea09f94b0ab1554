"""Fixtures of the outbox tests: ready accounts (one with a bounce mailbox), messages with a
history, and users with the message permissions (the Mail Log)."""

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from outbox.models import Attempt, OutboundMessage


@pytest.fixture
def make_message(db):
    """make_message(account, status="sent", history=[{outcome, code, reason, ...}], **fields)
    → a saved message (its account's type and From unless given) with those Attempt rows."""

    def make(account, status="sent", history=(), **fields):
        values = {
            "account": account, "account_type": getattr(account, "account_type", "system"),
            "from_email": getattr(account, "email", "crm@example.com"),
            "to": ["customer@example.org"], "subject": "Your invoice", "body_text": "secret body",
            "status": status, "attempts": len(history),
            "sent_at": timezone.now() if status == "sent" else None,
        }  # fmt: skip
        values.update(fields)
        message = OutboundMessage.objects.create(**values)
        for entry in history:
            entry = {"account": account, "account_name": getattr(account, "name", ""), **entry}
            Attempt.objects.create(message=message, **entry)
        return message

    return make


LIMITS_REDIS_URL = "redis://127.0.0.1:6379/4"


@pytest.fixture
def in_redis(settings):
    """Sending limits counted in Redis db 4, emptied before and after."""
    client = redis.Redis.from_url(LIMITS_REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL = LIMITS_REDIS_URL
    yield client
    client.flushdb()


@pytest.fixture
def in_database(settings):
    """Sending limits counted in the database history (no broker)."""
    settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL = ""


@pytest.fixture
def make_log_user(db):
    """make_log_user("view", "change") → a user with just those OutboundMessage permissions."""

    def make(*actions, username="clerk"):
        user = User.objects.create_user(username, f"{username}@example.com", "pass-123-456")
        codenames = [f"{action}_outboundmessage" for action in actions]
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="outbox", codename__in=codenames)
        )
        return user

    return make


@pytest.fixture
def ready(smtp_server, smtp_account_for):
    """ready(account_type="system", **fields) -> a verified, active account on smtp_server."""

    def make(account_type="system", **fields):
        fields = {"verified_at": timezone.now(), **fields}
        return smtp_account_for(smtp_server, account_type=account_type, **fields)

    return make


@pytest.fixture
def bounce_relay(smtp_server, imap_server, smtp_account_for):
    """A ready System account "Relay" on aiosmtpd whose bounce mailbox is the Dovecot."""
    account = smtp_account_for(
        smtp_server, name="Relay", verified_at=timezone.now(), bounce_host=imap_server.host,
        bounce_port=imap_server.port, bounce_username=imap_server.username,
    )  # fmt: skip
    account.set_bounce_password(imap_server.password)
    account.save()
    return account
