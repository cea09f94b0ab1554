"""Settings for bench/post_office_compare.py only: the CRM's, plus django-post_office
delivering over SMTP to the bench's sink (its port in BENCH_SMTP_PORT).

Never used by the product: post_office is a peer measured beside the outbox, not a
dependency (bench/requirements.txt installs it).
"""

import os

from crm.settings import *  # noqa: F403 -- the same database, apps and middleware as the CRM
from crm.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]

EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("BENCH_SMTP_PORT", "25"))
POST_OFFICE = {
    # Plain SMTP to the sink, as the outbox's account uses; post_office's best setting is a
    # batch as large as the queue (its default of 100 halves its speed, issue 12).
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "BATCH_SIZE": int(os.environ.get("BENCH_POST_OFFICE_BATCH", "100000")),
    "LOG_LEVEL": 2,  # its default: a Log row per sent message, as the outbox's history
}
