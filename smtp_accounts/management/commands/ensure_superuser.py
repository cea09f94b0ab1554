"""Create the first admin for `make run`, once, and say how to log in."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME/_PASSWORD/_EMAIL (or admin with a "
        "generated password, printed once) unless one exists."
    )

    def handle(self, *args, **options):
        users = get_user_model()
        # Django's own `createsuperuser --noinput` reads these same variables.
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        if users.objects.filter(username=username).exists():
            self.stdout.write(
                f"Log in as {username!r}. Forgot the password? "
                f"python manage.py changepassword {username}"
            )
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(12)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or "admin@example.com"
        users.objects.create_superuser(username, email, password)
        given = bool(os.environ.get("DJANGO_SUPERUSER_PASSWORD"))
        shown = "the one in DJANGO_SUPERUSER_PASSWORD" if given else password
        self.stdout.write(self.style.SUCCESS(f"Created the admin {username!r}, password: {shown}"))
