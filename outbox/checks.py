"""System checks of the outbox (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Warning


def check_inline_delivery(app_configs=None, **kwargs):
    """W001: without CELERY_BROKER_URL mail is sent inside web requests."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return []
    return [Warning(
        "CELERY_BROKER_URL is not set, so mail is sent inside web requests (a slow mail "
        "server slows the page down) and retries wait for a `celery -A crm beat` process.",
        hint="Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0) and run "
             "`celery -A crm worker` and `celery -A crm beat`.",
        id="outbox.W001",
    )]  # fmt: skip
