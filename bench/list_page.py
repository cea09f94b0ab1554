"""How the SMTP Accounts list scales: render time and SQL queries with 100 vs 10,000 accounts.

    .venv/bin/python bench/list_page.py [--rounds 5]

Builds two throw-away SQLite databases side by side, renders the first page of the list
in each (alternating, several rounds) and prints the medians and their ratio. A list
that paginates in the database should cost about the same whatever the total.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(
    DJANGO_SETTINGS_MODULE="crm.settings",
    DJANGO_DEBUG="false",
    DJANGO_SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijkl",
    FERNET_KEYS="rJ3vX9nXy0mHq0mF1u0x7dXWbTt3l6Kq4m8w2y5Zb1c=",
    DJANGO_ALLOWED_HOSTS="testserver",
)
warnings.filterwarnings("ignore", message="No directory at")
WORKDIR = tempfile.mkdtemp(prefix="bench-list-")
os.environ["DATABASE_URL"] = f"sqlite:///{WORKDIR}/small.sqlite3"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

settings.STORAGES["staticfiles"]["BACKEND"] = (
    "django.contrib.staticfiles.storage.StaticFilesStorage"
)
DATABASES = {"small": 100, "large": 10_000}


def build(alias, count):
    settings.DATABASES[alias] = {
        **settings.DATABASES["default"], "NAME": f"{WORKDIR}/{alias}.sqlite3"
    }
    call_command("migrate", database=alias, verbosity=0)
    from smtp_accounts.models import SmtpAccount

    admin = User.objects.db_manager(alias).create_superuser("admin", "a@example.com", "x")
    SmtpAccount.objects.using(alias).bulk_create(
        SmtpAccount(name=f"Account {i:05d}", email=f"a{i}@example.com", host="smtp.example.com",
                    port=587, username=f"a{i}@example.com", updated_by=admin)
        for i in range(count)
    )


def render(alias, count):
    """Seconds and SQL queries for one GET of the list, served from database `alias`."""
    connections["default"] = connections[alias]
    client = Client()
    client.force_login(User.objects.using(alias).get(username="admin"))
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        response = client.get("/settings/smtp-accounts/")
        elapsed = time.perf_counter() - start
    assert response.status_code == 200 and f"of {count}<" in response.content.decode()
    return elapsed, len(queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    for alias, count in DATABASES.items():
        build(alias, count)
    times = {alias: [] for alias in DATABASES}
    queries = {}
    for _ in range(rounds):
        for alias in DATABASES:
            elapsed, queries[alias] = render(alias, DATABASES[alias])
            times[alias].append(elapsed)
    for alias, count in DATABASES.items():
        ms = statistics.median(times[alias]) * 1000
        print(f"{count:>6} accounts: median {ms:6.1f} ms, {queries[alias]} SQL queries")
    ratio = statistics.median(times["large"]) / statistics.median(times["small"])
    print(f"ratio 10,000 / 100: {ratio:.2f}x")


if __name__ == "__main__":
    main()
