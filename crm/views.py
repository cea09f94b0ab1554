"""Project-level views: the home redirect, the health check and the left menu."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache

from .celery import app as celery_app


@login_required
def home(request):
    """The CRM has one module here; send people to it."""
    return redirect("smtp_accounts:list")


def _database_ok():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _broker_state():
    """"ok", "unavailable", or "inline" without a broker (mail is sent in the request)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "inline"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception:
        return "unavailable"


@never_cache
def healthz(request):
    """200 with {"database": "ok", "broker": "ok" | "inline"} when both work, else 503.

    "inline": there is no broker (CELERY_BROKER_URL unset), mail goes out in the request."""
    body = {"database": "ok" if _database_ok() else "unavailable", "broker": _broker_state()}
    healthy = "unavailable" not in body.values()
    body["status"] = "ok" if healthy else "unavailable"
    return JsonResponse(body, status=200 if healthy else 503)


def menu(request):
    """Template context: the left menu, with the current section marked."""
    path = getattr(request, "path", "")
    return {
        "menu_section": "settings" if path.startswith("/settings/") else "",
        "debug_inbox": settings.DEBUG,
    }
