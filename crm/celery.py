"""The Celery app: `celery -A crm worker` delivers mail, `celery -A crm beat` runs the sweeper."""

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect
def _close_old_database_connections(sender=None, **kwargs):
    """Between tasks, close a database connection only when it is broken or older than
    CONN_MAX_AGE, as Django does between requests. (Celery's own default closes it after
    every task: a new PostgreSQL connection per message; see CELERY_DB_REUSE_MAX.)"""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # inline, inside a request or a transaction: not ours to close
    from django.db import close_old_connections

    close_old_connections()
