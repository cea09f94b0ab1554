"""Where a worker's time goes in one batch: cProfile of deliver_batch's work, in-process.

    .venv/bin/python bench/profile_batch.py [--messages 100] [--tree DIR] [--top 25]

Runs smtp-sink on 127.0.0.1, a throw-away SQLite database (or DATABASE_URL), queues
`--messages` rows of post_office_compare.py's campaign (one content, text and HTML) and runs
claim + send + record of one batch on a connection opened beforehand (a worker keeps it
open): unprofiled (this process's CPU per message), then under cProfile timing CPU, not
wall time (a wait for PostgreSQL or the sink costs no CPU). Prints the CPU split by area,
the queries the batch ran and the top functions by own time.
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AREAS = {  # first match wins, on "file:function" of each profiled function (its own time)
    "SMTP: socket writes/reads, smtplib, our sender": (
        "smtplib", "socket.py", "ssl.py", "/senders/", "sendall", "recv", "_socket"),
    "Django message building (EmailMessage, MIME)": ("django/core/mail", "/email/"),
    "ORM, SQL and database driver (incl. commits)": (
        "django/db", "sqlite3", "psycopg", "'commit'", "'execute'", "'fetch"),
    "outbox services (claim, deliver, history)": ("/outbox/", "/services/delivery",
                                                  "/models/outbox"),
    "copying and GC around expressions, Python internals": ("copy", "{"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    sys.path[:0] = [str(HERE), str(options.tree.resolve())]
    os.chdir(options.tree)
    import send_throughput as bench

    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    bench.BASE_DIR = options.tree.resolve()
    bench.setup(workdir)
    port = bench.free_port()
    sink, _ = bench.start_sink(port)
    try:
        profile(bench, port, options)
    finally:
        sink.terminate()


def profile(bench, port, options):
    import post_office_compare as campaign  # the campaign both benches send
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount
    from smtp_accounts.senders import get_sender

    services = bench.outbox_services()
    bench.outbound_message().objects.all().delete()
    SmtpAccount.objects.filter(name="Bench sink").delete()
    account = SmtpAccount.objects.create(
        name="Bench sink", account_type="campaigns", host="127.0.0.1", port=port,
        security="none", email="bench@example.com", verified_at=timezone.now(),
    )  # fmt: skip
    with get_sender(account):  # warm: imports, TLS context, first connection
        pass
    # Unprofiled first: a warm-up batch, then this process's CPU per message for one batch.
    for _warm_up_then_measure in range(2):
        campaign.queue_ours(account, options.messages)
        cpu, wall = time.process_time(), time.perf_counter()
        services.deliver_claimed(services.claim_batch(account.pk), reuse_connection=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{options.messages} messages unprofiled: {wall * 1000:.0f} ms, this process's CPU "
          f"{cpu / options.messages * 1e6:.0f} µs per message")  # fmt: skip
    campaign.queue_ours(account, options.messages)
    reset_queries()
    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting on the server is not
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        services.deliver_claimed(services.claim_batch(account.pk), reuse_connection=True)
        profiler.disable()
    elapsed = time.perf_counter() - started
    report(pstats.Stats(profiler), elapsed, queries, options)


def report(stats, elapsed, queries, options):
    own = {}  # area -> own time
    for (path, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        where = f"{path}:{name}"
        area = next((a for a, keys in AREAS.items() if any(k in where for k in keys)), "other")
        own[area] = own.get(area, 0) + tottime
    total = sum(own.values())
    print(f"{options.messages} messages in {elapsed * 1000:.0f} ms "
          f"({elapsed / options.messages * 1e6:.0f} µs each, profiled), "
          f"{len(queries)} queries:")  # fmt: skip
    for area, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {area:52} {seconds / total:6.1%}  {seconds / options.messages * 1e6:5.0f} µs/msg")
    kinds = {}
    for query in queries:
        kind = query["sql"].split()[0] + " " + query["sql"].split('"')[1] if '"' in query["sql"] \
            else query["sql"].split()[0]  # fmt: skip
        kinds[kind] = kinds.get(kind, 0) + 1
    print("  queries: " + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())))
    stats.sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(options.top)
    if os.environ.get("BENCH_CALLERS"):
        stats.print_callers(os.environ["BENCH_CALLERS"])


if __name__ == "__main__":
    main()
