"""`manage.py smtp_accounts SUBCOMMAND`: keep the sending accounts from a shell or a script.

The command parses arguments and prints; the work is done by `smtp_accounts.services` and the
validation by `SmtpAccountForm`, exactly as on the web pages.
"""

import argparse
import getpass
import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.forms import model_to_dict
from django.views.decorators.debug import sensitive_variables

from smtp_accounts import services
from smtp_accounts.forms import SmtpAccountForm
from smtp_accounts.management import output
from smtp_accounts.management.audited import AuditedCommandMixin
from smtp_accounts.management.base import SafeCommand
from smtp_accounts.models import AccountType, AuthMethod, SmtpAccount
from smtp_accounts.models.account import ROUTING_FIELDS

FORM_FIELDS = SmtpAccountForm.Meta.fields


def whole_number(text):
    """argparse type for --priority and the limits: a whole number ≥ 0, else a clear error."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError("expected a whole number of 0 or more")
    return int(text)


class Command(AuditedCommandMixin, SafeCommand):
    help = "List, create, change, delete, test, diagnose and send through the SMTP accounts."
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        sub = self.add_subparsers(parser, dest="subcommand", required=True, metavar="SUBCOMMAND")
        self._json_flag(sub.add_parser("list", help="list every account"))
        self._json_flag(self._for_account(sub, "show", "one account's settings and state"))
        self._account_options(sub.add_parser("create", help="add an account"))
        self._account_options(self._for_account(sub, "update", "change the options given"))
        delete = self._for_account(sub, "delete", "delete an account")
        delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        test = self._for_account(sub, "test", "send a test email carrying a confirmation code")
        test.add_argument("--to", required=True, metavar="EMAIL", help="where the test goes")
        confirm = self._for_account(sub, "confirm", "confirm the code of the latest test email")
        confirm.add_argument("code", help="the six digits from the test email")
        self._check_options(sub.add_parser("check", help="diagnose the connection; sends nothing"))
        self._send_options(sub.add_parser("send", help="queue an email through a ready account"))
        self._json_flag(self._for_account(sub, "history", "who changed what, newest first"))

    def _for_account(self, subparsers, name, help_text):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("account", help="the account's id or Account Name")
        return parser

    def _check_options(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("account", nargs="?", help="the account's id or Account Name")
        target.add_argument("--all", action="store_true", help="check every account")
        self._json_flag(parser)

    def _json_flag(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def _account_options(self, parser):
        parser.add_argument("--name", help="Account Name (unique)")
        parser.add_argument("--type", dest="account_type", metavar="TYPE",
                            help=f"Account Type: {', '.join(AccountType.values)}")
        parser.add_argument("--provider", help="internal (SMTP server) or external (Mailgun)")
        parser.add_argument("--host", help="SMTP host name, e.g. smtp.gmail.com")
        parser.add_argument("--port", help="SMTP port, e.g. 587")
        parser.add_argument("--user", dest="username", metavar="USER",
                            help="SMTP login (may differ from Email)")
        parser.add_argument("--security", help="starttls, ssl or none")
        parser.add_argument("--domain", help="Mailgun sending domain (external accounts)")
        parser.add_argument("--email", help="the address mail is sent from")
        parser.add_argument("--from-name", dest="from_name", metavar="NAME",
                            help="the From name")
        active = parser.add_mutually_exclusive_group()
        active.add_argument("--active", dest="is_active", action="store_const", const=True,
                            help="Is Active? on")
        active.add_argument("--inactive", dest="is_active", action="store_const", const=False,
                            help="Is Active? off: the account sends nothing")
        parser.add_argument("--sign-in", dest="auth_method", metavar="METHOD",
                            help=f"Sign-in: {' or '.join(AuthMethod.values)} (Google and "
                            "Microsoft only where their OAuth client id is set)")
        parser.add_argument("--priority", type=whole_number, metavar="N",
                            help="Priority: lower sends first among accounts of its type")
        for field, label in (("max_per_minute", "minute"), ("max_per_hour", "hour"),
                             ("max_per_day", "day")):
            parser.add_argument("--" + field.replace("_", "-"), dest=field, type=whole_number,
                                metavar="N", help=f"Messages per {label}; 0 clears the limit")
        parser.add_argument("--max-connections", dest="max_connections", type=whole_number,
                            metavar="N", help="Connections at once (every worker together); "
                            "0 clears the limit")
        parser.add_argument(
            "--password-stdin", action="store_true",
            help="read the password from the first line of stdin (never give it as an argument)",
        )
        self._json_flag(parser)

    def _send_options(self, parser):
        parser.add_argument("--type", dest="account_type", required=True, metavar="TYPE",
                            choices=AccountType.values,
                            help=f"which account sends it: {', '.join(AccountType.values)}")
        recipients = parser.add_mutually_exclusive_group(required=True)
        recipients.add_argument("--to", action="append", metavar="EMAIL",
                                help="recipient (repeat for several)")
        recipients.add_argument("--to-list", dest="to_list", metavar="FILE",
                                help="one message per address in FILE (one a line; blank "
                                "lines and lines starting with # are skipped)")
        parser.add_argument("--subject", required=True)
        parser.add_argument("--body-file", metavar="FILE",
                            help="text body; without it the body is read from stdin")

    def execute(self, *args, **options):
        self.stdin = options.get("stdin", sys.stdin)  # tests pass their own
        return super().execute(*args, **options)

    def handle(self, *args, subcommand, **options):
        try:
            getattr(self, f"handle_{subcommand}")(options)
        except services.AccountNotFound as err:
            raise CommandError(str(err)) from err
        except ValidationError as err:
            raise CommandError(" ".join(err.messages)) from err

    # --- subcommands ---------------------------------------------------------------------

    def handle_list(self, options):
        accounts = list(SmtpAccount.objects.all())
        if options["json"]:
            return self._print_json([services.account_as_dict(a) for a in accounts])
        if not accounts:
            return self.stdout.write("No SMTP accounts yet; add one with `smtp_accounts create`.")
        self._print_lines(output.table(output.ACCOUNT_COLUMNS, map(output.account_row, accounts)))

    def handle_show(self, options):
        account = services.find_account(options["account"])
        if options["json"]:
            return self._print_json(services.account_as_dict(account))
        latest = services.latest_test(account)
        self._print_lines(output.details(output.account_details(account, latest)))

    def handle_create(self, options):
        account = self._save(SmtpAccount(), options)
        self._report_saved(account, options, "Created")

    def handle_update(self, options):
        account = self._save(services.find_account(options["account"]), options)
        self._report_saved(account, options, "Updated")

    def handle_delete(self, options):
        account = services.find_account(options["account"])
        label = f"{account.name!r} (id {account.pk})"
        if not options["yes"] and not self._confirmed(f"Delete the account {label}?"):
            return self.stdout.write("Nothing deleted.")
        services.delete_account(account)
        self.stdout.write(f"Deleted the account {label}.")

    def handle_test(self, options):
        account = services.find_account(options["account"])
        try:
            test = services.request_test_email(account, to=options["to"], user=None)
        except services.TestEmailThrottled as err:
            raise CommandError(str(err)) from err
        test.refresh_from_db()
        if test.status == test.Status.FAILED:
            hint = services.failure_hint(test.error)
            message = f"The test email to {test.recipient} failed: {test.error} {hint}"
            raise CommandError(message.rstrip())
        self.stdout.write(f"Test email for {account.name!r} {output.test_summary(test)}.")
        self.stdout.write(
            f"Paste its code with: manage.py smtp_accounts confirm {account.pk} CODE"
        )

    def handle_confirm(self, options):
        account = services.find_account(options["account"])
        try:
            services.confirm_test_email(account, options["code"].strip())
        except services.CodeRejected as err:
            raise CommandError(err.reason) from err  # says how many tries are left
        self.stdout.write(f"Confirmed: the account {account.name!r} is verified.")

    def handle_check(self, options):
        if options["all"]:
            return self._check_all(options)
        account = services.find_account(options["account"])
        result = services.check_account(account)
        if options["json"]:
            self._print_json(result.as_dict())
        else:
            self.stdout.write(f"Checking {account.name!r} ({account.server_label})")
            self._print_lines(output.check_step_lines(result))
        if not result.ok:
            step = result.failure
            raise CommandError(f"{account.name!r} failed at {step.name}: {step.detail}")

    def _check_all(self, options):
        results = []
        for account in SmtpAccount.objects.all():
            results.append(services.check_account(account))
            if not options["json"]:  # as each finishes: a slow server should not hide the rest
                self.stdout.write(output.check_summary(account, results[-1]))
        if options["json"]:
            self._print_json([result.as_dict() for result in results])
        failed = sum(not result.ok for result in results)
        if failed:
            raise CommandError(f"{failed} of {len(results)} accounts failed the check.")

    def handle_send(self, options):
        body = self._read_body(options["body_file"])
        if options["to_list"]:
            return self._send_to_list(options, body)
        try:
            message = services.send_email(
                account_type=options["account_type"], to=options["to"],
                subject=options["subject"], body=body,
            )
        except (services.NoReadyAccount, ValueError) as err:  # no account; a malformed message
            raise CommandError(str(err)) from err
        via = message.account.name
        message.refresh_from_db()  # delivery may have run already (no broker: in-process)
        summary = f"Message {message.pk} through {via!r}: {message.status}"
        if message.status == message.Status.FAILED:
            raise CommandError(f"{summary}: {message.last_error}")
        reason = f" (will retry: {message.last_error})" if message.last_error else ""
        self.stdout.write(summary + reason)

    def _send_to_list(self, options, body):
        """Queue one message per address of the list file, all or none."""
        path = options["to_list"]
        try:
            with open(path, encoding="utf-8") as list_file:
                addresses = services.read_address_list(list_file)
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"Cannot read the address list {path}: {err}") from err
        except ValueError as err:
            raise CommandError(f"{path}: {err} Nothing was queued.") from err
        if not addresses:
            raise CommandError(f"{path} has no address (one a line); nothing was queued.")
        progress = output.ProgressBar(self.stderr, "Queuing") if self.stderr.isatty() else None
        try:
            queued = services.queue_campaign(options["account_type"], addresses,
                                             subject=options["subject"], body=body,
                                             progress=progress)  # fmt: skip
        except (services.NoReadyAccount, ValueError) as err:
            raise CommandError(f"{err} Nothing was queued.") from err
        self.stdout.write(f"Queued {queued} message{'s' if queued != 1 else ''} "
                          f"to the addresses in {path}.")  # fmt: skip

    def handle_history(self, options):
        name, events = services.find_history(options["account"])
        events = list(events)
        if options["json"]:
            return self._print_json([services.event_as_dict(event) for event in events])
        if not events:
            return self.stdout.write(f"No changes to {name!r} have been recorded yet.")
        self._print_lines(output.table(output.HISTORY_COLUMNS, map(output.history_row, events)))

    # --- helpers -------------------------------------------------------------------------

    def _save(self, account, options):
        """Validate with SmtpAccountForm (the web page's rules) and save. Raises CommandError."""
        data = model_to_dict(account, fields=FORM_FIELDS)
        data.update({f: options[f] for f in FORM_FIELDS if options.get(f) is not None})
        for field in ROUTING_FIELDS[1:]:  # the limits
            if data.get(field) == 0:  # 0 clears a limit, as a blank field does on the page
                data[field] = ""
        if options["password_stdin"]:
            data["password"] = self._read_password()
        form = self._bound_form(account.pk, data)
        if not form.is_valid() and self._may_prompt(form, data):
            data["password"] = getpass.getpass(f"Password for {data['username']}: ")
            form = self._bound_form(account.pk, data)
        if not form.is_valid():
            raise CommandError(f"The account was not saved: {output.form_errors(form)}")
        return form.save()

    def _bound_form(self, pk, data):
        # A fresh instance each time: validating a form writes the data into its instance,
        # and the password rule compares the data with the stored values.
        instance = services.find_account(pk) if pk else SmtpAccount()
        return SmtpAccountForm(data, instance=instance)

    def _may_prompt(self, form, data):
        """Ask for the password only when it is all that is missing and someone can type it."""
        return set(form.errors) == {"password"} and not data.get("password") and self._tty()

    @sensitive_variables()
    def _read_password(self):
        line = self.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise CommandError("--password-stdin read an empty line; pipe the password in.")
        return password

    def _read_body(self, path):
        if path:
            try:
                with open(path, encoding="utf-8") as body_file:
                    return body_file.read()
            except (OSError, UnicodeDecodeError) as err:
                raise CommandError(f"Cannot read the body file {path}: {err}") from err
        if self._tty():
            raise CommandError("Give the body with --body-file FILE or pipe it on stdin.")
        return self.stdin.read()

    def _confirmed(self, question):
        if not self._tty():
            raise CommandError(
                "Refusing to delete without confirmation: there is no terminal to ask on. "
                "Add --yes to delete anyway."
            )
        self.stdout.write(f"{question} Type 'yes' to confirm: ", ending="")
        self.stdout.flush()
        return self.stdin.readline().strip().lower() in ("y", "yes")

    def _tty(self):
        return hasattr(self.stdin, "isatty") and self.stdin.isatty()

    def _report_saved(self, account, options, verb):
        if options["json"]:
            return self._print_json(services.account_as_dict(account))
        state = "verified" if account.is_verified else "not verified"
        self.stdout.write(f"{verb} the account {account.name!r} (id {account.pk}); {state}.")
        if account.uses_oauth and not account.is_signed_in:
            label = account.get_auth_method_display()
            self.stdout.write(f"Sign it in on its page: Edit > Sign in with {label}.")
        elif not account.is_verified:
            self.stdout.write(f"Verify it with: smtp_accounts test {account.pk} --to EMAIL")

    def _print_json(self, value):
        self.stdout.write(json.dumps(value, indent=2))

    def _print_lines(self, lines):
        for line in lines:
            self.stdout.write(line)
