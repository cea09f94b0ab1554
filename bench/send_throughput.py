"""Outbox throughput, end to end: messages/s through a real Celery worker and Redis.

    .venv/bin/python bench/send_throughput.py [--messages 2000] [--rounds 5] [--ways batch]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench .venv/bin/python bench/...

`--tree DIR` runs the same measurement against another checkout of the project (e.g. the
commit before the outbox app, for bench/compare_batch.py); `--json` prints the figures only.

Runs postfix's smtp-sink (aiosmtpd's Sink if smtp-sink is absent) on 127.0.0.1, Redis db 7
of the Redis on 127.0.0.1:6379, and `celery -A crm worker` with 2 prefork processes, on a
throw-away database (a SQLite file unless DATABASE_URL names an existing PostgreSQL
database, whose outbox rows it replaces). Each round queues the same number of messages
three ways, in rotating order, and times from the first enqueue to the last row marked sent:

- naive: one task per message, each opening its own connection (send_mail in a task);
- kept:  one task per message on the worker's kept-open connection (system mail);
- batch: deliver_batch, up to 100 messages per task on one connection (campaign mail).

The machine's speed drifts over minutes, so the ways run side by side in every round and
the result is the median of the per-round ratios to the naive way.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import shared_task

BASE_DIR = Path(__file__).resolve().parents[1]  # --tree replaces it
BROKER_URL = "redis://127.0.0.1:6379/7"
LOCK_KEY = "crm-tests:session"  # the test suite's worker fixture takes dbs 5-7 the same way
WAYS = ("naive", "kept", "batch")
HERE = Path(__file__).resolve().parent
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@shared_task(name="bench.deliver_naive")
def deliver_naive(message_id):
    """A task per message that connects for that message alone: the way to beat."""
    outbox_services().deliver_message(message_id, reuse_connection=False)


def outbox_services():
    """The delivery services of the tree under test (the outbox app, or before it)."""
    try:
        from outbox import services
    except ImportError:  # a tree from before the outbox app
        from smtp_accounts import services
    return services


def outbox_tasks():
    try:
        from outbox import tasks
    except ImportError:
        from smtp_accounts import tasks
    return tasks


def outbound_message():
    try:
        from outbox.models import OutboundMessage
    except ImportError:
        from smtp_accounts.models import OutboundMessage
    return OutboundMessage


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def start_sink(port):
    """postfix's smtp-sink on `port` (it needs no running postfix), else aiosmtpd's Sink."""
    if Path(SMTP_SINK).exists():
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        command, name = [SMTP_SINK, *user, f"127.0.0.1:{port}", "1024"], "smtp-sink"
    else:
        command = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                   "-c", "aiosmtpd.handlers.Sink"]  # fmt: skip
        name = "aiosmtpd Sink (smtp-sink not found; it caps near 1,000 messages/s)"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _accepts(port), "the SMTP sink to listen")
    return process, name


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start_worker(workdir):
    """`celery -A crm worker` with this module imported, so it knows bench.deliver_naive."""
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 -- the worker writes it until exit
    command = [str(Path(sys.executable).with_name("celery")), "-A", "crm", "worker",
               "--include", "bench.send_throughput", "--concurrency", "2", "--loglevel",
               "WARNING", "--without-mingle", "--without-gossip", "--hostname",
               f"bench-{uuid.uuid4().hex[:6]}@%h"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BASE_DIR), str(HERE.parent)])}
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=log)
    from crm.celery import app

    wait_for(lambda: app.control.ping(timeout=0.5), "the worker to answer", timeout=60)
    return process


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"Gave up waiting for {what}.")
        time.sleep(0.05)


def queue_rows(account, count, account_type):
    """`count` queued rows of a realistic size, written straight to the outbox table."""
    OutboundMessage = outbound_message()

    OutboundMessage.objects.all().delete()
    body = "Dear reader,\n\n" + "Our news of the month, in a few lines of text.\n" * 25
    OutboundMessage.objects.bulk_create(
        OutboundMessage(account=account, account_type=account_type, from_email=account.email,
                        to=[f"reader{n}@example.com"], subject=f"News {n}", body_text=body)
        for n in range(count)
    )  # fmt: skip
    return list(OutboundMessage.objects.values_list("pk", flat=True))


def run(way, account, count):
    """Messages per second, from the first enqueue to the last row marked sent."""
    tasks, OutboundMessage = outbox_tasks(), outbound_message()

    ids = queue_rows(account, count, "campaigns" if way == "batch" else "system")
    start = time.perf_counter()
    if way == "batch":
        tasks.deliver_batch.delay(account.pk)  # each full batch enqueues the next
    else:
        task = deliver_naive if way == "naive" else tasks.deliver_message
        for message_id in ids:
            task.delay(message_id)
    done = OutboundMessage.objects.filter(status__in=["sent", "failed"])
    wait_for(lambda: done.count() == count, f"the {way} round to finish", timeout=600)
    elapsed = time.perf_counter() - start
    failed = OutboundMessage.objects.filter(status="failed").first()
    if failed:
        sys.exit(f"A message failed ({way}): {failed.last_error}")
    return count / elapsed


def setup(workdir):
    """Environment and a migrated database for the bench and its worker."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="crm.settings", DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijkl",
        FERNET_KEYS="rJ3vX9nXy0mHq0mF1u0x7dXWbTt3l6Kq4m8w2y5Zb1c=",
        CELERY_BROKER_URL=BROKER_URL, SMTP_ACCOUNTS_ALLOWED_NETWORKS="127.0.0.0/8",
    )  # fmt: skip
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        connection.cursor().execute("PRAGMA journal_mode=WAL")  # readers never block writers


def take_redis_db():
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    if not client.set(LOCK_KEY, f"bench-{os.getpid()}", nx=True, ex=3600):
        sys.exit(f"{BROKER_URL} is in use (a test session holds it); try again later.")
    for key in client.scan_iter():
        if key != LOCK_KEY.encode():
            client.delete(key)
    return client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--tree", type=Path, help="another checkout of the project to measure")
    parser.add_argument("--json", action="store_true", help="print {way: [msg/s per round]}")
    options = parser.parse_args()
    if options.tree:
        global BASE_DIR
        BASE_DIR = options.tree.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bench-send-"))
    setup(workdir)
    redis_client = take_redis_db()
    port = free_port()
    sink, sink_name = start_sink(port)
    worker = start_worker(workdir)
    try:
        results = measure(port, options)
        if options.json:
            print(json.dumps(results))
        else:
            report(results, options, sink_name)
    finally:
        worker.terminate()
        worker.wait(30)
        sink.terminate()
        redis_client.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)


def measure(port, options):
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount

    outbound_message().objects.all().delete()
    SmtpAccount.objects.filter(name="Bench sink").delete()
    account = SmtpAccount.objects.create(
        name="Bench sink", account_type="campaigns", host="127.0.0.1", port=port,
        security="none", email="bench@example.com", verified_at=timezone.now(),
    )  # fmt: skip
    run("kept", account, 200)  # warm-up: worker processes, connections, caches
    results = {way: [] for way in WAYS}
    ways = [way for way in WAYS if way in options.ways]
    results = {way: [] for way in ways}
    for number in range(options.rounds):
        order = ways[number % len(ways) :] + ways[: number % len(ways)]
        for way in order:
            results[way].append(run(way, account, options.messages))
        figures = "   ".join(f"{way} {results[way][-1]:7.0f} msg/s" for way in ways)
        if not options.json:
            print(f"round {number + 1}: {figures}", flush=True)
    return results


def report(results, options, sink_name):
    print(f"\n{options.messages} messages per way and round, {options.rounds} rounds, "
          f"2 prefork worker processes, Redis, {sink_name}.")  # fmt: skip
    for way in results:
        print(f"{way:6} median {statistics.median(results[way]):7.0f} msg/s")
    for way in [way for way in ("kept", "batch") if way in results and "naive" in results]:
        ratios = [mine / naive for mine, naive in zip(results[way], results["naive"], strict=True)]
        print(f"{way} / naive: median ratio {statistics.median(ratios):.1f}x "
              f"(rounds: {', '.join(f'{r:.1f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
