"""CPU per message of each step of a batch, the worker's and PostgreSQL's, unprofiled.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_smtpperf \
        .venv/bin/python bench/batch_steps.py [--rounds 11]

Queues post_office_compare.py's campaign (100 rows a round) and runs the steps of
deliver_claimed one by one on a connection to smtp-sink opened beforehand: claim_batch,
rendering, sending, building the Attempt rows, and recording them (mark_sent and
record_attempts in groups of SAVE_EVERY, each group one transaction, as the Recorder does);
then a whole deliver_claimed. Prints, per step, this process's CPU (median of the rounds but
the first) and the CPU of its PostgreSQL backend (/proc/<pid>/stat, summed over the rounds:
the kernel counts it in 10 ms ticks).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import post_office_compare as campaign  # noqa: E402 -- the campaign, the CPU reader
import send_throughput as bench  # noqa: E402 -- setup and the sink

BATCH = 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    options = parser.parse_args()
    bench.setup(Path(tempfile.mkdtemp(prefix="bench-steps-")))
    port = bench.free_port()
    sink, _ = bench.start_sink(port)
    try:
        measure(port, options.rounds)
    finally:
        sink.terminate()


def measure(port, rounds):
    from django.db import connection, transaction
    from django.utils import timezone

    from outbox import policy, services
    from outbox.services import claim, history, render
    from smtp_accounts.models import SmtpAccount
    from smtp_accounts.senders import get_sender

    SmtpAccount.objects.filter(name="Bench sink").delete()
    account = SmtpAccount.objects.create(
        name="Bench sink", account_type="campaigns", host="127.0.0.1", port=port,
        security="none", email="bench@example.com", verified_at=timezone.now(),
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    worker, database = {}, {}

    def step(name, work, *args):
        before, started = campaign.cpu_seconds(backend), time.process_time()
        result = work(*args)
        worker.setdefault(name, []).append((time.process_time() - started) / BATCH * 1e6)
        database[name] = database.get(name, 0.0) + campaign.cpu_seconds(backend) - before
        return result

    def record(rows, deliveries, attempts):
        for start in range(0, BATCH, policy.SAVE_EVERY):
            group = slice(start, start + policy.SAVE_EVERY)
            sent = {row.pk: d.provider_id for row, d in zip(rows[group], deliveries[group],
                                                             strict=True)}  # fmt: skip
            with transaction.atomic():
                claim.mark_sent(rows[0].claim_token, sent)
                history.record_attempts(attempts[group])

    def deliver_next(account):
        services.deliver_claimed(services.claim_batch(account.pk), reuse_connection=True)

    sender = get_sender(account)
    sender.open()
    try:
        for _round in range(rounds):
            campaign.queue_ours(account, BATCH)
            rows = step("claim_batch (claim and load 100 rows)", services.claim_batch, account.pk)
            raws = step("render (Renderer)", lambda rows, renderer: [
                renderer.render(row) for row in rows], rows, render.Renderer(rows[0].account))
            deliveries = step("send (SMTP, kept connection)", lambda raws: [
                sender.send(raw) for raw in raws], raws)  # fmt: skip
            attempts = step("build the Attempt rows", lambda rows, deliveries: [
                history.sent_attempt(row, d) for row, d in zip(rows, deliveries, strict=True)
            ], rows, deliveries)  # fmt: skip
            step("record (mark_sent + attempts, per group)", record, rows, deliveries, attempts)
            campaign.queue_ours(account, BATCH)
            step("deliver_claimed, all of it", deliver_next, account)
    finally:
        sender.close()
    print(f"{BATCH} messages a round, {rounds} rounds; µs of CPU per message:")
    print(f"  {'step':45} {'worker':>7} {'PostgreSQL':>11}")
    for name, figures in worker.items():
        print(f"  {name:45} {statistics.median(figures[1:]):7.0f} "
              f"{database[name] / (BATCH * rounds) * 1e6:11.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
