"""How the Mail Log scales: its pages over 1,000 vs 1,000,000 messages, on PostgreSQL.

    createdb -h 127.0.0.1 -U postgres crm_bench_log
    .venv/bin/python bench/mail_log_page.py [--sizes 1000,1000000] [--rounds 7] [--explain]

Each size gets its own schema in the scratch database (dropped and rebuilt each run), filled
by COPY: messages spread over 90 days across 10 accounts (90 % sent, 7 % failed, 3 % queued),
two history rows per failed message and one per sent message; one customer (the search)
gets 20 of them at every size. Then it renders, alternating
sizes for several rounds, the first page, a filtered page (status=failed&account=…) and a
search (q=…), and prints the median time, the SQL query count and the ratio between sizes.
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of each page's message queries at the largest
size. A log that pages and counts in the database should cost about the same at any size.
"""

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm_bench_log")
os.environ.update(
    DJANGO_SETTINGS_MODULE="crm.settings",
    DJANGO_DEBUG="false",
    DJANGO_SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijkl",
    FERNET_KEYS="rJ3vX9nXy0mHq0mF1u0x7dXWbTt3l6Kq4m8w2y5Zb1c=",
    DJANGO_ALLOWED_HOSTS="testserver",
    CELERY_BROKER_URL="",
)
warnings.filterwarnings("ignore", message="No directory at")

import django

django.setup()

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox.models import Attempt, OutboundMessage
from smtp_accounts.models import SmtpAccount

settings.STORAGES["staticfiles"]["BACKEND"] = (
    "django.contrib.staticfiles.storage.StaticFilesStorage"
)
TYPES = ("system", "customer_service", "campaigns")
# One customer, written to 20 times whatever the size: "did my mail to Zoe go out?"
SEARCH = "zoe.miller"
SEARCHED = 20


def build(alias, count):
    """A fresh schema `alias` with `count` messages; returns the admin and a busy account."""
    with connections["default"].cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {alias} CASCADE; CREATE SCHEMA {alias}")
        # Once per database, in public: each schema's migration then finds it there.
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    settings.DATABASES[alias] = {
        **settings.DATABASES["default"],
        "OPTIONS": {"options": f"-c search_path={alias},public"},
    }
    call_command("migrate", database=alias, verbosity=0)
    admin = User.objects.db_manager(alias).create_superuser("admin", "a@example.com", "x")
    accounts = SmtpAccount.objects.using(alias).bulk_create(
        SmtpAccount(name=f"Account {i}", account_type=TYPES[i % 3], email=f"crm{i}@example.com",
                    host="smtp.example.com", port=587, verified_at=timezone.now())
        for i in range(10)
    )  # fmt: skip
    start = time.perf_counter()
    copy_rows(alias, OutboundMessage, (_message_row(i, count, accounts) for i in range(count)))
    copy_rows(alias, Attempt, _attempt_rows(alias))
    with connections[alias].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"{alias}: {count:,} messages in {time.perf_counter() - start:.0f} s", flush=True)
    return admin, accounts[1]


def _message_row(i, count, accounts):
    roll = random.Random(i).random()
    status = "sent" if roll < 0.90 else "failed" if roll < 0.97 else "queued"
    account = accounts[i % len(accounts)]
    created = timezone.now() - timedelta(days=90) * (1 - i / count)
    # Varied addresses (distinct trigrams), as real recipients are.
    customer = i % (count // SEARCHED) == 7
    to = "zoe.miller@acme.test" if customer else f"c{i * 7919:x}@d{i % 997}.test"
    return {
        "account_id": account.pk, "account_type": account.account_type,
        "from_email": account.email, "to": [to],
        "subject": f"Invoice {i} for your order", "body_text": "Hello " * 20, "status": status,
        "attempts": 2 if status == "failed" else int(status == "sent"), "created_at": created,
        "updated_at": created, "sent_at": created if status == "sent" else None,
        "idempotency_key": f"bench-{i}",
        "last_error": "550 5.1.1 No such user here" if status == "failed" else "",
    }  # fmt: skip


def _attempt_rows(alias):
    """History rows for the sent and failed messages: read first (a connection cannot run a
    query while it is COPYing), then yielded."""
    messages = OutboundMessage.objects.using(alias).exclude(status="queued")
    found = list(messages.values_list("pk", "status", "account_id", "created_at"))
    return (
        {"message_id": pk, "account_id": account_id, "account_name": "Account",
         "at": created + timedelta(minutes=number), "outcome": outcome,
         "code": 250 if outcome == "sent" else 550, "reason": "reply text", "recipients": []}
        for pk, status, account_id, created in found
        for number, outcome in enumerate(
            ("temporary", "permanent") if status == "failed" else ("sent",)
        )
    )  # fmt: skip


def copy_rows(alias, model, rows):
    """COPY `rows` (dicts of column values; other fields take their defaults) into `model`."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    conn = connections[alias]
    with conn.cursor() as cursor, cursor.copy(
        f"COPY {model._meta.db_table} ({columns}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row([_value(conn, field, row) for field in fields])


def _value(conn, field, row):
    value = row[field.attname] if field.attname in row else field.get_default()
    value = field.get_db_prep_save(value, conn)
    return value.dumps(value.obj) if hasattr(value, "dumps") else value  # JSON adapters


def render(alias, admin, url):
    """Seconds and SQL queries for one GET of `url`, served from schema `alias`."""
    connections["default"] = connections[alias]
    client = Client()
    client.force_login(admin)
    with CaptureQueriesContext(connections[alias]) as queries:
        start = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.status_code
    return elapsed, queries


def pages(account):
    return {
        "first page": "/settings/mail-log/",
        "failed of one account": f"/settings/mail-log/?status=failed&account={account.pk}",
        "search": f"/settings/mail-log/?q={SEARCH}",
    }


def explain(alias, queries):
    table = OutboundMessage._meta.db_table
    with connections[alias].cursor() as cursor:
        for query in queries:
            if table in query["sql"] and "django_session" not in query["sql"]:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = "\n    ".join(row[0] for row in cursor.fetchall())
                print(f"  {query['sql'][:160]}…\n    {plan}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    built = {f"log_{size}": (size, *build(f"log_{size}", size)) for size in sizes}
    times, counts, captured = {}, {}, {}
    for _ in range(args.rounds):
        for alias, (_size, admin, account) in built.items():
            for name, url in pages(account).items():
                elapsed, queries = render(alias, admin, url)
                times.setdefault((name, alias), []).append(elapsed)
                counts[name, alias], captured[name, alias] = len(queries), queries.captured_queries
    small, large = list(built)[0], list(built)[-1]
    for name in pages(built[small][2]):
        cells = [f"{built[a][0]:>9,}: {statistics.median(times[name, a]) * 1000:6.1f} ms "
                 f"{counts[name, a]} queries" for a in (small, large)]  # fmt: skip
        ratio = statistics.median(times[name, large]) / statistics.median(times[name, small])
        print(f"{name:<22} {' | '.join(cells)} | ratio {ratio:.2f}")
    if args.explain:
        for name in pages(built[large][2]):
            print(f"\n== {name} ({built[large][0]:,} messages)")
            explain(large, captured[name, large])


if __name__ == "__main__":
    main()
