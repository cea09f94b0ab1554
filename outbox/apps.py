from django.apps import AppConfig
from django.core import checks as django_checks


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # webhooks connects the Mailgun receiver; tasks registers the tasks that
        # services/enqueue.py looks up by name.
        from . import checks, tasks, webhooks  # noqa: F401

        django_checks.register(checks.check_inline_delivery, deploy=True)
