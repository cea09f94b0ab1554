"""`manage.py devserver [ADDRPORT]`: runserver plus the local dev inbox (debug only)."""

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

from ... import devinbox


class Command(BaseCommand):
    help = (
        "Run the development server and, on 127.0.0.1:SMTP_ACCOUNTS_DEV_INBOX_PORT, the dev "
        "inbox that keeps every message it receives (shown on the Dev inbox page). "
        "Refuses to run unless DJANGO_DEBUG is true."
    )
    requires_system_checks = ()  # runserver runs them itself

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default="", help="As for runserver: a port or ipaddr:port."
        )
        parser.add_argument(
            "--noreload", action="store_false", dest="use_reloader",
            help="Do not restart the server when code changes.",
        )  # fmt: skip

    def handle(self, *args, addrport, use_reloader, **options):
        if not settings.DEBUG:
            raise CommandError(
                "devserver is for development only: set DJANGO_DEBUG=true (make run does), "
                "or serve the app with gunicorn in production."
            )
        # With the autoreloader, this command runs again in a child process that is restarted
        # on every code change; only the parent (which never restarts) owns the inbox's port.
        inbox = None if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true" else self.start_inbox()
        try:
            args = [addrport] if addrport else []
            call_command("runserver", *args, use_reloader=use_reloader)
        finally:
            if inbox is not None:
                inbox.stop()

    def start_inbox(self):
        """Start the dev inbox and say where it is. Raises CommandError if the port is taken."""
        port = settings.SMTP_ACCOUNTS_DEV_INBOX_PORT
        try:
            inbox = devinbox.start_inbox(port)
        except OSError as err:
            raise CommandError(
                f"The dev inbox cannot listen on {devinbox.HOST}:{port} ({err.strerror or err}). "
                "Stop whatever uses that port, or set SMTP_ACCOUNTS_DEV_INBOX_PORT to a free one."
            ) from err
        self.stdout.write(
            f"Dev inbox: SMTP on {devinbox.HOST}:{port} (no TLS, no login), messages kept in "
            f"{devinbox.inbox_dir()} and shown at /settings/smtp-accounts/dev-inbox/."
        )
        return inbox
