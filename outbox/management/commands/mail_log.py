"""`manage.py mail_log SUBCOMMAND`: the Mail Log from a shell — what went out, what failed
and why, Retry, and pruning old mail. The work is done by outbox.services, as on the pages.
"""

import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from outbox.models import OutboundMessage
from outbox.services import log, retention, retry
from smtp_accounts.management import output
from smtp_accounts.management.commands.smtp_accounts import OneLineErrorParser
from smtp_accounts.models import AccountType
from smtp_accounts.services import AccountNotFound, find_account

COLUMNS = ("ID", "Date", "Account", "Type", "To", "Subject", "Status", "Attempts")
LATER = ("suppressions", "fetch_bounces")  # come with the bounces issue


def positive(text):
    """argparse type: a whole number ≥ 1 (for --limit)."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError(text)
    return int(text)


def days(text):
    """argparse type: a whole number of days ≥ 0 (for --older-than)."""
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


class Command(BaseCommand):
    help = "The Mail Log: list and show messages, retry failed ones, prune old ones."

    def create_parser(self, prog_name, subcommand, **kwargs):
        """A parser whose own errors are one line, as in `smtp_accounts` (see there)."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineErrorParser
        return parser

    def add_arguments(self, parser):
        sub = parser.add_subparsers(
            dest="subcommand", required=True, metavar="SUBCOMMAND", parser_class=OneLineErrorParser
        )
        self._list_options(sub.add_parser("list", help="messages, newest first"))
        show = sub.add_parser("show", help="one message and its history")
        show.add_argument("id", help="the message's id")
        show.add_argument("--json", action="store_true", help="machine-readable output")
        self._retry_options(sub.add_parser("retry", help="queue failed messages again now"))
        prune = sub.add_parser("prune", help="delete sent and failed mail older than DAYS")
        prune.add_argument(
            "--older-than",
            required=True,
            type=days,
            metavar="DAYS",
            help="age in days, from when a message was created (0: all)",
        )
        prune.add_argument("--dry-run", action="store_true", help="count only; delete nothing")
        for name in LATER:
            later = sub.add_parser(name, help="not available yet")
            later.add_argument("rest", nargs="*", help="(ignored)")

    def _list_options(self, parser):
        parser.add_argument("--account", help="the account's id or Account Name")
        parser.add_argument("--status", choices=OutboundMessage.Status.values)
        parser.add_argument("--type", choices=AccountType.values, help="the account type")
        parser.add_argument(
            "--limit",
            type=positive,
            default=100,
            metavar="N",
            help="at most N messages (default 100)",
        )
        parser.add_argument("--json", action="store_true", help="a JSON array")

    def _retry_options(self, parser):
        parser.add_argument("ids", nargs="*", metavar="ID", help="message ids")
        parser.add_argument("--failed", action="store_true", help="every failed message")
        parser.add_argument("--account", help="with --failed: only this account's")

    def handle(self, *args, subcommand, **options):
        if subcommand in LATER:
            self.stderr.write(
                f"mail_log {subcommand} is not available yet (it comes with bounce handling)."
            )
            raise SystemExit(2)
        try:
            getattr(self, f"handle_{subcommand}")(options)
        except (AccountNotFound, log.MessageNotFound) as err:
            raise CommandError(str(err)) from err

    def handle_list(self, options):
        account = find_account(options["account"]) if options["account"] else None
        messages = log.filter_messages(
            account=account, status=options["status"], type=options["type"]
        )[: options["limit"]]
        if options["json"]:
            return self._print_json([log.message_as_dict(m) for m in messages])
        if not messages:
            return self.stdout.write("No messages match.")
        for line in output.table(COLUMNS, map(message_row, messages)):
            self.stdout.write(line)

    def handle_show(self, options):
        message = log.get_message(options["id"])
        if options["json"]:
            return self._print_json(log.message_with_history_as_dict(message))
        for line in output.details(message_details(message)):
            self.stdout.write(line)
        for attempt in log.timeline(message):
            self.stdout.write(attempt_line(attempt))

    def handle_retry(self, options):
        if options["failed"] == bool(options["ids"]):
            raise CommandError("Give message ids, or --failed (with --account for one account).")
        if options["account"] and not options["failed"]:
            raise CommandError("--account goes with --failed.")
        if options["failed"]:
            return self._retry_failed(options["account"])
        messages = [log.get_message(message_id) for message_id in options["ids"]]
        refused = []
        for message in messages:
            if retry.retry_message(message):
                self.stdout.write(f"Message {message.pk} queued again.")
            else:
                refused.append(f"{message.pk} ({message.status})")
        if refused:
            raise CommandError(f"Only failed messages are retried; not: {', '.join(refused)}.")

    def _retry_failed(self, account_name):
        account = find_account(account_name) if account_name else None
        count = retry.retry_failed(account)
        whose = f" of {account.name!r}" if account else ""
        self.stdout.write(f"{count} failed message{'s' if count != 1 else ''}{whose} queued again.")

    def handle_prune(self, options):
        age = timedelta(days=options["older_than"])
        count = retention.prune_messages(older_than=age, dry_run=options["dry_run"])
        verb = "Would remove" if options["dry_run"] else "Removed"
        self.stdout.write(
            f"{verb} {count} sent or failed message{'s' if count != 1 else ''} created more "
            f"than {options['older_than']} days ago, with their history."
        )

    def _print_json(self, value):
        self.stdout.write(json.dumps(value, indent=2))


def message_row(message):
    """One row of `list`, with the web page's columns."""
    return [
        message.pk, output.when(message.created_at),
        message.account.name if message.account else "-", message.account_type,
        _short(", ".join(message.to), 40), _short(message.subject, 50), message.status,
        message.attempts,
    ]  # fmt: skip


def message_details(message):
    """`show`: (label, value) pairs, in the web page's words. Never the body."""
    return [
        ("ID", message.pk), ("From", message.from_email), ("To", ", ".join(message.to)),
        ("Cc", ", ".join(message.cc) or "-"), ("Subject", message.subject),
        ("Message-ID", retry.message_id_of(message)), ("Status", message.status),
        ("Account", message.account.name if message.account else "-"),
        ("Attempts", message.attempts), ("Last error", output.one_line(message.last_error) or "-"),
        ("Created", output.when(message.created_at)), ("Sent", output.when(message.sent_at)),
    ]  # fmt: skip


def attempt_line(attempt):
    """One history entry: when, account, outcome, reply code and text."""
    code = f" {attempt.code}" if attempt.code else ""
    reason = f" {output.one_line(attempt.reason)}" if attempt.reason else ""
    account = attempt.account_name or "-"
    return f"{output.when(attempt.at)}  {account}  {attempt.outcome}{code}{reason}"


def _short(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"
