"""`smtp_accounts send --to-list FILE` with 100,000 addresses: seconds to queue, peak memory.

    .venv/bin/python bench/to_list.py [--addresses 100000] [--rounds 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench .venv/bin/python bench/to_list.py

Runs the command as ops would (call_command, a file of one address a line), on a throw-away
database (a SQLite file unless DATABASE_URL names an existing PostgreSQL database, whose
outbox rows it replaces), with Redis db 7 as the broker and no worker: the command's work
ends when its one batch task is on the queue, which is what it waits for. Per round:

- read:  reading and checking the file (Django's validate_email per line, de-duplication);
- queue: the whole command (read, bulk INSERTs of INSERT_CHUNK rows, commit, enqueue);
- peak:  the most memory Python held during a second run of the command (tracemalloc, which
         slows it, so that run is not timed), and the process's peak RSS at the end.
"""

import argparse
import io
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import send_throughput as bench  # noqa: E402 -- the sibling bench's setup and helpers


def write_list(path, count):
    with open(path, "w") as out:
        out.write("# bench list\n")
        out.writelines(f"reader{n}@example{n % 97}.com\n" for n in range(count))


def empty_outbox():
    """Delete the outbox's rows, their history first, in a statement each (the ORM's delete()
    would load them all and inflate the memory figures). A scratch database may hold another
    bench's sent mail, whose history references it."""
    from django.db import connection

    from outbox.models import Attempt, OutboundMessage, Suppression

    with connection.cursor() as cursor:
        for model in (Attempt, Suppression, OutboundMessage):  # our tables only
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608


def queue(path):
    """Run the command once; returns its seconds."""
    from django.core.management import call_command

    start = time.perf_counter()
    call_command("smtp_accounts", "send", "--type", "campaigns", "--to-list", str(path),
                 "--subject", "News of the month", stdout=io.StringIO(),
                 stdin=io.StringIO("Dear reader,\n\nOur news of the month.\n"))  # fmt: skip
    return time.perf_counter() - start


def read_seconds(path):
    from smtp_accounts.services import read_address_list

    start = time.perf_counter()
    with open(path) as lines:
        read_address_list(lines)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-to-list-"))
    bench.setup(workdir)
    redis_client = bench.take_redis_db()
    try:
        from django.db import connection
        from django.utils import timezone

        from outbox.models import OutboundMessage
        from smtp_accounts.models import SmtpAccount

        SmtpAccount.objects.filter(name="Bench list").delete()
        SmtpAccount.objects.create(
            name="Bench list", account_type="campaigns", provider="external",
            domain="mg.example.com", email="news@mg.example.com", verified_at=timezone.now(),
        )  # fmt: skip
        path = workdir / "list.txt"
        write_list(path, options.addresses)
        reads, queues = [], []
        for number in range(options.rounds):
            reads.append(read_seconds(path))
            empty_outbox()
            queues.append(queue(path))
            print(f"round {number + 1}: read {reads[-1]:.2f} s, queue {queues[-1]:.2f} s",
                  flush=True)  # fmt: skip
        assert OutboundMessage.objects.filter(status="queued").count() == options.addresses
        empty_outbox()
        tracemalloc.start()
        queue(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        seconds = statistics.median(queues)
        print(f"\n{options.addresses:,} addresses, {connection.vendor}, {options.rounds} rounds: "
              f"read median {statistics.median(reads):.2f} s, queue median {seconds:.2f} s "
              f"({options.addresses / seconds:,.0f} rows/s), Python peak "
              f"{peak / 2**20:.0f} MiB, process peak RSS {rss:.0f} MiB")  # fmt: skip
        empty_outbox()
    finally:
        redis_client.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
