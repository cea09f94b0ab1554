"""Campaign mail through Mailgun: recipients/s with a call per message vs batch calls.

    .venv/bin/python bench/mailgun_batch.py [--messages 2000] [--batch-messages 10000] [--rounds 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench .venv/bin/python bench/...

Same machinery as bench/send_throughput.py (Redis db 7, `celery -A crm worker` with 2
prefork processes, a throw-away database), with the test suite's Mailgun-like HTTP server
(smtp_accounts/tests/fixtures/mailgun_server.py) in a process of its own instead of an SMTP
sink. Each round queues the same campaign (one content, a recipient per row) twice and
times, from the first enqueue to the last row recorded sent:

- per message: a deliver_message task per row, one Mailgun call each on the worker's kept
  HTTP session (what a campaign through an external account did before batch calls);
- batch:       deliver_batch, one call of up to 1,000 recipients per claim.

The two ways alternate in every round; the result is the median of the per-round ratios.
The batch way sends more recipients per round (--batch-messages): a round of a few calls
would time mostly the task pick-up and this script's polling, not the sending.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import send_throughput as bench  # noqa: E402 -- the sibling bench's setup and helpers

API_KEY = "key-test-0123456789abcdef0123456789ab"  # the Mailgun-like server's key
DOMAIN = "mg.example.com"
WAYS = ("per message", "batch")


def serve(port):
    """Run the Mailgun-like server on `port` until killed (the --serve mode)."""
    bench.setup(Path(tempfile.mkdtemp(prefix="bench-mailgun-")))
    from smtp_accounts.tests.fixtures.mailgun_server import MailgunTestServer

    server = MailgunTestServer(port)
    server.requests = _Forgetful()  # a bench sends too many to keep
    server.start()
    signal.pause()


class _Forgetful(list):
    def append(self, item):
        pass


def start_server():
    port = bench.free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_for(lambda: bench._accepts(port), "the Mailgun-like server to listen")
    return process, f"http://127.0.0.1:{port}/v3"


def queue(account, count):
    """`count` queued rows of one campaign (same content, a recipient each)."""
    from outbox.models import OutboundMessage

    OutboundMessage.objects.all().delete()
    body = "Dear reader,\n\n" + "Our news of the month, in a few lines of text.\n" * 25
    OutboundMessage.objects.bulk_create(
        OutboundMessage(account=account, account_type="campaigns", from_email=account.email,
                        to=[f"reader{n}@example.com"], subject="News of the month",
                        body_text=body)
        for n in range(count)
    )  # fmt: skip
    return list(OutboundMessage.objects.values_list("pk", flat=True))


def run(way, account, count):
    """Recipients per second, from the first enqueue to the last row recorded sent."""
    from outbox import tasks
    from outbox.models import OutboundMessage

    ids = queue(account, count)
    start = time.perf_counter()
    if way == "batch":
        tasks.deliver_batch.delay(account.pk)  # each full batch enqueues the next
    else:
        for message_id in ids:
            tasks.deliver_message.delay(message_id)
    done = OutboundMessage.objects.filter(status__in=["sent", "failed"])
    bench.wait_for(lambda: done.count() == count, f"the {way} round to finish", timeout=900)
    elapsed = time.perf_counter() - start
    if failed := OutboundMessage.objects.filter(status="failed").first():
        sys.exit(f"A message failed ({way}): {failed.last_error}")
    return count / elapsed


def measure(options):
    from django.utils import timezone

    from smtp_accounts.models import SmtpAccount

    SmtpAccount.objects.filter(name="Bench Mailgun").delete()
    account = SmtpAccount.objects.create(
        name="Bench Mailgun", account_type="campaigns", provider="external", domain=DOMAIN,
        email=f"news@{DOMAIN}", verified_at=timezone.now(),
    )  # fmt: skip
    run("per message", account, 200)  # warm-up: worker processes, sessions, caches
    results = {way: [] for way in WAYS}
    for number in range(options.rounds):
        for way in WAYS[number % 2 :] + WAYS[: number % 2]:
            count = options.batch_messages if way == "batch" else options.messages
            results[way].append(run(way, account, count))
        print(f"round {number + 1}: " + "   ".join(
            f"{way} {results[way][-1]:7.0f} recipients/s" for way in WAYS), flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="per round, a call each")
    parser.add_argument("--batch-messages", type=int, default=10000, help="per round, batched")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        return serve(options.serve)
    server, api_url = start_server()
    os.environ.update(MAILGUN_API_KEY=API_KEY, MAILGUN_API_URL=api_url)  # the worker's too
    workdir = Path(tempfile.mkdtemp(prefix="bench-mailgun-"))
    bench.setup(workdir)
    redis_client = bench.take_redis_db()
    worker = bench.start_worker(workdir)
    try:
        results = measure(options)
        ratios = [b / p for b, p in zip(results["batch"], results["per message"], strict=True)]
        print(f"\n{options.messages} recipients a round with a call each, "
              f"{options.batch_messages} batched, {options.rounds} rounds, "
              "2 prefork worker processes, Redis, the Mailgun-like server.")  # fmt: skip
        for way in WAYS:
            print(f"{way:12} median {statistics.median(results[way]):7.0f} recipients/s")
        print(f"Mailgun batch calls vs a call per message: median ratio "
              f"{statistics.median(ratios):.1f}")  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(30)
        server.terminate()
        redis_client.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
