"""The SMTP campaign path beside django-post_office: same sink, same database, in rounds.

    .venv/bin/pip install -r bench/requirements.txt        # django-post-office, bench only
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_smtpperf \
        .venv/bin/python bench/post_office_compare.py [--messages 2000] [--rounds 5] [--tree DIR]

Both contenders send the same campaign (one From, Subject, text and HTML body; a recipient
per message) over plain SMTP to postfix's smtp-sink, on the same PostgreSQL database (the
DATABASE_URL's, whose outbox and post_office rows it replaces), history on for both:

- ours: the rows queued in the outbox, one `deliver_batch` task started; 2 prefork Celery
  workers (`celery -A crm worker`) on a Redis of the bench's own (redis-server on a free
  port), each batch task enqueueing the next; timed to the last row marked sent.
- post_office: `send_queued_mail --processes 2` (its 5 threads per process) with a batch
  as large as the queue (its best setting) and LOG_LEVEL 2 (a Log row per sent message),
  run by a warm process started with the bench, so neither side pays Django's start-up.

CPU per message is read from /proc/<pid>/stat (utime + stime, and the cutime of reaped
children): the Celery worker and its pool processes, or post_office's process and its pool;
the PostgreSQL backends of the bench's database but the bench's own (it only queues and
waits; polled every 20 ms, so a backend that exits mid-round loses at most its last 20 ms;
autovacuum is left out); the bench's redis-server.
Contenders alternate their order per round; the ratio is the median of per-round ratios.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import send_throughput as bench  # noqa: E402 -- the sink, worker and waiting helpers

TICK = os.sysconf("SC_CLK_TCK")
SUBJECT = "Our news of the month"
BODY = "Dear reader,\n\n" + "Our news of the month, in a few lines of text.\n" * 25
HTML = "<p>Dear reader,</p>\n" + "<p>Our news of the month, in <b>HTML</b>.</p>\n" * 25


def cpu_seconds(pid, children=False):
    """utime + stime of `pid` (and of its reaped children), in seconds; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICK


def process_tree(pid):
    """`pid` and its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending.extend(int(child) for child in children.read().split())
        except FileNotFoundError:
            pass
    return found


class DatabaseCpu:
    """CPU of the PostgreSQL backends serving `database`, sampled from /proc in a thread.

    A backend's title is "postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE"; each tick
    lists /proc, reads the title of pids it has not seen yet, and the stat of the ones that serve
    `database` (a backend that appears and exits between two ticks is missed)."""

    def __init__(self, user, database, interval=0.02, ignore=()):
        self.marker = f" {user} {database} ".encode()
        self.interval, self.ignored, self.first, self.last = interval, set(ignore), {}, {}
        self._stop, self._thread = threading.Event(), None

    def __enter__(self):
        self.first, self.last = {}, {}
        self._sample(first=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self):
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, first=False):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.ignored:
                continue
            pid = int(name)
            if pid not in self.last:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        title = cmdline.read()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if not (title.startswith(b"postgres: ") and self.marker in title):
                    # A backend forked a moment ago still has the postmaster's title: look
                    # again next tick. Anything else (other databases, helpers) is not ours.
                    if title and b"/postgres" not in title.split(b"\0")[0]:
                        self.ignored.add(pid)
                    continue
            seconds = cpu_seconds(pid)
            if seconds:
                self.last[pid] = max(seconds, self.last.get(pid, 0.0))
                if first:
                    self.first[pid] = seconds


class Meter:
    """Wall time and CPU seconds (worker, PostgreSQL, Redis) of one contender's round.
    `worker_cpu` reads the worker's CPU seconds; without it the run sets worker_seconds."""

    def __init__(self, database_cpu, redis_pid, worker_cpu=None):
        self.database_cpu, self.redis_pid, self.worker_cpu = database_cpu, redis_pid, worker_cpu
        self.worker_seconds = 0.0

    def __enter__(self):
        self._redis = cpu_seconds(self.redis_pid)
        self._worker = self.worker_cpu() if self.worker_cpu else 0.0
        self.database_cpu.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        self.elapsed = time.perf_counter() - self._start
        self.database_cpu.__exit__(*exc_info)
        if self.worker_cpu:
            self.worker_seconds = self.worker_cpu() - self._worker
        self.cpu = {
            "worker": self.worker_seconds,
            "PostgreSQL": self.database_cpu.seconds,
            "Redis": cpu_seconds(self.redis_pid) - self._redis,
        }


def setup(workdir, redis_port):
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.post_office_settings", DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijkl",
        FERNET_KEYS="rJ3vX9nXy0mHq0mF1u0x7dXWbTt3l6Kq4m8w2y5Zb1c=",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        SMTP_ACCOUNTS_ALLOWED_NETWORKS="127.0.0.0/8",
    )  # fmt: skip
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm_smtpperf")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database (its outbox is emptied).")
    call_command("migrate", verbosity=0)


def start_redis(workdir):
    port = bench.free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    bench.wait_for(lambda: bench._accepts(port), "redis-server to listen")
    return process, port


def empty(*models):
    """TRUNCATE the tables of `models`: a DELETE would leave every round's rows dead in the
    table and its indexes (autovacuum lags behind a bench), and each round slower."""
    from django.db import connection

    tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in models)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def queue_ours(account, count):
    from outbox.models import Attempt, OutboundMessage, PendingEvent

    empty(Attempt, PendingEvent, OutboundMessage)
    OutboundMessage.objects.bulk_create(
        OutboundMessage(account=account, account_type="campaigns", from_email=account.email,
                        to=[f"reader{n}@example.com"], subject=SUBJECT, body_text=BODY,
                        body_html=HTML)
        for n in range(count)
    )  # fmt: skip


def run_ours(account, count, meter):
    from outbox import tasks
    from outbox.models import OutboundMessage

    queue_ours(account, count)
    # Asked every 20 ms: an index probe, not a count, so waiting costs PostgreSQL little.
    unsent = OutboundMessage.objects.filter(status__in=["queued", "sending"])
    with meter:
        tasks.deliver_batch.delay(account.pk)  # each full batch enqueues the next
        deadline = time.monotonic() + 600
        while unsent.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if failed := OutboundMessage.objects.filter(status="failed").first():
        sys.exit(f"One of our messages failed: {failed.last_error}")
    sent = OutboundMessage.objects.filter(status="sent", history__outcome="sent").count()
    if sent != count:
        sys.exit(f"{sent} of our {count} messages were sent with their history.")


def queue_post_office(count):
    from post_office import mail
    from post_office.models import Email, Log

    empty(Log, Email)
    mail.send_many([
        {"recipients": [f"reader{n}@example.com"], "sender": "bench@example.com",
         "subject": SUBJECT, "message": BODY, "html_message": HTML}
        for n in range(count)
    ])  # fmt: skip


def run_post_office(runner, count, meter):
    """send_queued_mail --processes 2 in the runner (a warm process started with the bench)."""
    from post_office.models import STATUS, Email, Log

    queue_post_office(count)
    with meter:
        runner.stdin.write("go\n")
        runner.stdin.flush()
        meter.worker_seconds = float(runner.stdout.readline())  # its CPU, pool included
    sent = Email.objects.filter(status=STATUS.sent).count()
    logs = Log.objects.filter(status=STATUS.sent).count()
    if sent != count or logs != count:
        sys.exit(f"post_office sent {sent} of {count} messages, with {logs} log rows.")


def start_runner(workdir):
    """This script in --runner mode: it sends post_office's queue on each line "go"."""
    log = open(workdir / "post_office.log", "wb")  # noqa: SIM115 -- written until it exits
    return subprocess.Popen([sys.executable, __file__, "--runner"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip


def runner():
    """Run send_queued_mail --processes 2 for each line on stdin; print its CPU seconds (its
    own and its pool's). A process of its own: forking one that runs Celery's client stalls
    post_office's pool."""
    import django

    django.setup()
    from django.core.management import call_command

    for _line in sys.stdin:
        before = own_cpu()
        call_command("send_queued_mail", processes=2, verbosity=0)
        print(own_cpu() - before, flush=True)


def own_cpu():
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", type=Path, help="run our side from another checkout (its "
                        "worker), e.g. the code before this bench's changes")  # fmt: skip
    parser.add_argument("--runner", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.runner:
        return runner()
    if options.tree:
        bench.BASE_DIR = options.tree.resolve()  # the worker's code; the schema must match
    workdir = Path(tempfile.mkdtemp(prefix="bench-post-office-"))
    redis, redis_port = start_redis(workdir)
    sink_port = bench.free_port()
    os.environ["BENCH_SMTP_PORT"] = str(sink_port)
    sink = worker = post_office = None
    try:
        setup(workdir, redis_port)
        sink, sink_name = bench.start_sink(sink_port)
        worker = bench.start_worker(workdir)
        post_office = start_runner(workdir)
        results = measure(options, sink_port, redis.pid, worker.pid, post_office)
        report(results, options, sink_name)
    finally:
        for process in (post_office, worker, sink, redis):
            if process is not None:
                process.terminate()
                process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def measure(options, sink_port, redis_pid, worker_pid, post_office):
    from django.db import connection
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount

    SmtpAccount.objects.filter(name="Bench sink").delete()
    account = SmtpAccount.objects.create(
        name="Bench sink", account_type="campaigns", host="127.0.0.1", port=sink_port,
        security="none", email="bench@example.com", verified_at=timezone.now(),
    )  # fmt: skip
    settings = connection.settings_dict
    with connection.cursor() as cursor:  # the bench's own backend: its queries are not work
        cursor.execute("SELECT pg_backend_pid()")
        bench_backend = cursor.fetchone()[0]
    database_cpu = DatabaseCpu(settings["USER"], settings["NAME"], ignore=[bench_backend])

    def worker_cpu():
        return cpu_seconds(worker_pid, children=True) + sum(
            cpu_seconds(pid) for pid in process_tree(worker_pid)[1:])  # fmt: skip

    meters = {"ours": lambda: Meter(database_cpu, redis_pid, worker_cpu),
              "post_office": lambda: Meter(database_cpu, redis_pid)}  # fmt: skip
    count = options.messages
    runs = {"ours": lambda meter: run_ours(account, count, meter),
            "post_office": lambda meter: run_post_office(post_office, count, meter)}  # fmt: skip
    run_ours(account, 300, meters["ours"]())  # warm-up: worker processes, connections
    run_post_office(post_office, 300, meters["post_office"]())
    results = {name: [] for name in runs}
    for number in range(options.rounds):
        for name in list(runs)[:: 1 if number % 2 == 0 else -1]:
            meter = meters[name]()
            runs[name](meter)
            results[name].append(meter)
        print(f"round {number + 1}: " + "   ".join(
            f"{name} {options.messages / results[name][-1].elapsed:6.0f} msg/s "
            f"{sum(results[name][-1].cpu.values()) / options.messages * 1e6:5.0f} µs/msg"
            for name in runs), flush=True)  # fmt: skip
    return results


def report(results, options, sink_name):
    count = options.messages
    speed = {name: [count / meter.elapsed for meter in meters] for name, meters in results.items()}
    pairs = zip(speed["ours"], speed["post_office"], strict=True)
    ratios = [mine / theirs for mine, theirs in pairs]
    print(f"\n{count} messages per contender and round, {options.rounds} rounds, {sink_name}, "
          f"PostgreSQL; load average {os.getloadavg()[0]:.1f}.")  # fmt: skip
    print(f"smtp campaign vs post_office: ours {statistics.median(speed['ours']):.0f} msg/s, "
          f"post_office {statistics.median(speed['post_office']):.0f} msg/s (rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}): ratio {statistics.median(ratios):.2f}")
    per_message = {}
    for name, meters in results.items():
        parts = {part: statistics.median(m.cpu[part] for m in meters) / count * 1e6
                 for part in meters[0].cpu}  # fmt: skip
        per_message[name] = (statistics.median(sum(m.cpu.values()) for m in meters)
                             / count * 1e6, parts)  # fmt: skip
    ours, theirs = per_message["ours"], per_message["post_office"]
    cpu_ratios = [sum(t.cpu.values()) / sum(o.cpu.values())
                  for o, t in zip(results["ours"], results["post_office"], strict=True)]
    print(f"cpu per message: ours {ours[0]:.0f} µs ({split(ours[1])}), post_office "
          f"{theirs[0]:.0f} µs ({split(theirs[1])}): ratio {statistics.median(cpu_ratios):.2f}")


def split(parts):
    return ", ".join(f"{part} {value:.0f}" for part, value in parts.items())


if __name__ == "__main__":
    main()
