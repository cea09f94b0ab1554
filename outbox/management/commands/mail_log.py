"""`manage.py mail_log SUBCOMMAND`: the Mail Log from a shell — what went out, what failed
and why, Retry, pruning old mail, the suppression list and reading bounce mailboxes. The work
is done by outbox.services, as on the pages.
"""

import json
from datetime import timedelta

from django.core.management.base import CommandError

from outbox.models import OutboundMessage
from outbox.services import bounces, log, retention, retry, suppressions
from smtp_accounts.bounces import BounceMailboxError
from smtp_accounts.management import output
from smtp_accounts.management.base import SafeCommand
from smtp_accounts.models import AccountType
from smtp_accounts.services import AccountNotFound, find_account

COLUMNS = ("ID", "Date", "Account", "Type", "To", "Subject", "Status", "Attempts")
SUPPRESSION_COLUMNS = ("Email", "Reason", "Since", "Message", "Note")


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


class Command(SafeCommand):
    help = "The Mail Log: list and show messages, retry failed ones, prune old ones."

    def add_arguments(self, parser):
        sub = self.add_subparsers(parser, dest="subcommand", required=True, metavar="SUBCOMMAND")
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
        self._suppression_options(sub.add_parser(
            "suppressions", help="addresses the CRM no longer sends to",
        ))  # fmt: skip
        fetch = sub.add_parser("fetch_bounces", help="read the bounce mailboxes now")
        fetch.add_argument(
            "account", nargs="?", help="the account's id or Account Name (default: every "
            "account with a bounce mailbox)",
        )  # fmt: skip

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

    def _suppression_options(self, parser):
        actions = self.add_subparsers(parser, dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="the suppressed addresses, newest first")
        listing.add_argument("--json", action="store_true", help="a JSON array")
        add = actions.add_parser("add", help="stop sending to an address (reason: manual)")
        add.add_argument("email", help="the address")
        add.add_argument("--reason", default="", metavar="R", help="why (kept as its note)")
        remove = actions.add_parser("remove", help="send to an address again")
        remove.add_argument("email", help="the address")

    def handle(self, *args, subcommand, **options):
        try:
            getattr(self, f"handle_{subcommand}")(options)
        except (AccountNotFound, log.MessageNotFound, suppressions.SuppressionNotFound,
                ValueError) as err:  # fmt: skip
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

    def handle_suppressions(self, options):
        action, email = options["action"], options.get("email")
        if action == "list":
            return self._list_suppressions(options["json"])
        if action == "add":
            suppression, created = suppressions.suppress(
                email, suppressions.Reason.MANUAL, note=options["reason"]
            )
            if not created:  # the list already says so: as idempotent as suppress() itself
                return self.stdout.write(f"{suppressions.describe(suppression)}; nothing changed.")
            return self.stdout.write(f"{suppression.email} suppressed: the CRM sends it nothing.")
        removed = suppressions.unsuppress(email)
        self.stdout.write(f"{removed.email} is off the suppression list: mail goes to it again.")

    def _list_suppressions(self, as_json):
        listed = suppressions.filter_suppressions()
        if as_json:
            return self._print_json([suppressions.suppression_as_dict(s) for s in listed])
        if not listed:
            return self.stdout.write("No address is suppressed.")
        for line in output.table(SUPPRESSION_COLUMNS, map(suppression_row, listed)):
            self.stdout.write(line)

    def handle_fetch_bounces(self, options):
        if options["account"]:
            accounts = [find_account(options["account"])]
            if not accounts[0].has_bounce_mailbox:
                raise CommandError(f"The account {accounts[0].name!r} has no bounce mailbox.")
        else:
            accounts = list(bounces.accounts_with_mailbox().order_by("name"))
            if not accounts:
                return self.stdout.write("No account has a bounce mailbox.")
        failures = []
        for account in accounts:
            try:
                self._print_applied(account, bounces.fetch_bounces(account))
            except BounceMailboxError as err:  # kept on the account too (`smtp_accounts show`)
                failures.append(f"{account.name}: {output.one_line(err.reason)}")
        if len(failures) == len(accounts) == 1:
            raise CommandError(failures[0])
        for line in failures:
            self.stderr.write(line)
        if failures:
            raise CommandError(f"{len(failures)} of {len(accounts)} bounce mailboxes could not "
                               "be read (see above).")  # fmt: skip

    def _print_applied(self, account, applied):
        noun = "bounce" if len(applied) == 1 else "bounces"
        self.stdout.write(f"{account.name}: {len(applied)} {noun} read.")
        for entry in applied:
            self.stdout.write(f"  {applied_line(entry)}")

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


def suppression_row(suppression):
    """One row of `suppressions list`, with the page's columns and the note."""
    return [
        suppression.email, suppression.reason, output.when(suppression.created_at),
        suppression.message_id or "-", _short(output.one_line(suppression.note), 40) or "-",
    ]  # fmt: skip


def applied_line(entry):
    """What one failure of a bounce did, in a line."""
    if entry.message is None:
        return f"{entry.email}: matches no message the CRM sent; flagged read."
    what = "failed, address suppressed" if entry.permanent else "delayed (history entry)"
    reason = _short(output.one_line(entry.reason), 80)
    return f"{entry.email}: message {entry.message.pk} {what}: {reason}"


def attempt_line(attempt):
    """One history entry: when, account, outcome, reply code and text."""
    code = f" {attempt.code}" if attempt.code else ""
    reason = f" {output.one_line(attempt.reason)}" if attempt.reason else ""
    account = attempt.account_name or "-"
    return f"{output.when(attempt.at)}  {account}  {attempt.outcome}{code}{reason}"


def _short(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"
