"""Shared limits under load: two accounts at 100/s and 50/s, two worker processes.

    .venv/bin/python bench/routing_limits.py [--messages 20000] [--rounds 3] [--cost-messages 5000]

Same machinery as bench/send_throughput.py (postfix's smtp-sink, Redis db 7, `celery -A crm
worker` with 2 prefork processes, a throw-away database). SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE
is 1/60, so *Messages per minute* 100 means 100 in any 1 s: the limits are per second.

1. Rates: a campaign of --messages over accounts A (100/s, Priority 1) and B (50/s, Priority
   2); this process is beat (a sweep every 0.2 s). Per account: sent, the measured rate
   (sent / its sending span), the highest count in any 1-s window of its sent attempts
   (the limit holds at reservation; an attempt is written a little after it) and failed.
2. Cost: --cost-messages through the batch path, without limits and with a limit the sink
   never reaches (10 million a "minute"), alternating for --rounds rounds; one line per round
   and the median ratio (target: limited ≤ 1.10 × unlimited time).
"""

import argparse
import statistics
import sys
import tempfile
import time
from bisect import bisect_right
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import send_throughput as bench  # noqa: E402 -- the sibling bench's setup and helpers

SCALE = 1 / 60  # a "minute" of 1 s


def make_account(name, port, priority, per_second):
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount

    SmtpAccount.objects.filter(name=name).delete()
    return SmtpAccount.objects.create(
        name=name, account_type="campaigns", host="127.0.0.1", port=port, security="none",
        email="bench@example.com", verified_at=timezone.now(), priority=priority,
        max_per_minute=per_second,
    )  # fmt: skip


def highest_in_a_second(stamps):
    """The most timestamps (sorted, seconds) inside any 1-s window."""
    return max((bisect_right(stamps, t + 1.0 - 1e-9) - i for i, t in enumerate(stamps)),
               default=0)  # fmt: skip


def rates(port, count):
    from outbox import services, tasks
    from outbox.models import Attempt, OutboundMessage

    a, b = make_account("Bench A", port, 1, 100), make_account("Bench B", port, 2, 50)
    bench.queue_rows(a, count, "campaigns")
    tasks.deliver_batch.delay(a.pk)
    done = OutboundMessage.objects.filter(status__in=["sent", "failed"])
    start = time.perf_counter()
    while done.count() < count:
        services.sweep_outbox()  # beat's tick, often: the windows are 1 s here
        time.sleep(0.2)
        if time.perf_counter() - start > 3600:
            sys.exit("Gave up after an hour.")
    for account in (a, b):
        sent = Attempt.objects.filter(account=account, outcome="sent").order_by("at")
        stamps = [moment.timestamp() for moment in sent.values_list("at", flat=True)]
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0
        rate = (len(stamps) - 1) / span if span else 0
        failed = OutboundMessage.objects.filter(account=account, status="failed").count()
        print(f"{account.name}: limit {account.max_per_minute}/s, sent {len(stamps)}, "
              f"rate {rate:.1f}/s ({rate / account.max_per_minute:.0%} of the limit), "
              f"highest in any 1 s {highest_in_a_second(stamps)}, failed {failed}")  # fmt: skip


def cost(port, count, rounds):
    account = make_account("Bench cost", port, 1, None)
    bench.run("batch", account, 200)  # warm-up
    ratios = []
    for number in range(rounds):
        timings = {}
        for limit in ((None, 10_000_000) if number % 2 == 0 else (10_000_000, None)):
            account.max_per_minute = limit
            account.save()
            timings[limit] = count / bench.run("batch", account, count)  # seconds
        ratios.append(timings[10_000_000] / timings[None])
        print(f"round {number + 1}: unlimited {count / timings[None]:.0f} msg/s, limited "
              f"{count / timings[10_000_000]:.0f} msg/s, ratio {ratios[-1]:.2f}")  # fmt: skip
    print(f"limiter cost: median time ratio limited/unlimited {statistics.median(ratios):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--cost-messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    import os

    os.environ["SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE"] = repr(SCALE)  # this process and the worker
    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    bench.setup(workdir)
    redis_client = bench.take_redis_db()
    port = bench.free_port()
    sink, sink_name = bench.start_sink(port)
    worker = bench.start_worker(workdir)
    try:
        print(f"{sink_name}, 2 prefork worker processes, Redis; windows scaled by 1/60.")
        rates(port, options.messages)
        cost(port, options.cost_messages, options.rounds)
    finally:
        worker.terminate()
        worker.wait(30)
        sink.terminate()
        redis_client.flushdb()


if __name__ == "__main__":
    main()
