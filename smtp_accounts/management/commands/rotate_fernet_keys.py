"""`manage.py rotate_fernet_keys`: re-encrypt every stored secret with the first FERNET_KEYS key.

Safe to stop and run again: each row is updated on its own, only if its token is still the one
that was read (a conditional update, so a password saved meanwhile is never overwritten), and
rows already on the first key are skipped.
"""

from dataclasses import dataclass, field
from itertools import groupby

from django.core.management.base import CommandError
from django.db.models import Q

from smtp_accounts.management.audited import AuditedCommandMixin
from smtp_accounts.management.base import SafeCommand
from smtp_accounts.models import SmtpAccount
from smtp_accounts.services import BATCH, SECRET_COLUMNS, rotate_account, secret_rows

BAR_WIDTH = 30


@dataclass
class Tally:
    """What a run did, row by row."""

    total: int = 0
    rotated: int = 0
    current: int = 0
    unreadable: list = field(default_factory=list)  # (id, name, column) no key opens

    @property
    def done(self):
        return self.rotated + self.current + len(self.unreadable)


class Command(AuditedCommandMixin, SafeCommand):
    help = (
        "Re-encrypt every stored SMTP password and sign-in token with the first key of "
        "FERNET_KEYS. Put the new "
        "key first, keep the old ones after it, run this, then drop the old keys."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change; change nothing"
        )

    def handle(self, *args, dry_run=False, **options):
        holding = Q()
        for column in SECRET_COLUMNS:
            holding |= ~Q(**{column: ""})
        accounts = SmtpAccount.objects.filter(holding).order_by("pk")
        pks = list(accounts.values_list("pk", flat=True))
        tally = Tally(total=sum(
            accounts.exclude(**{column: ""}).count() for column in SECRET_COLUMNS))
        for (pk, name), rows in groupby(secret_rows(pks), key=lambda row: row[:2]):
            tokens = {column: token for _, _, column, token in rows}
            for column, outcome in rotate_account(pk, tokens, dry_run=dry_run).items():
                if outcome == "unreadable":
                    tally.unreadable.append((pk, name, column))
                else:
                    setattr(tally, outcome, getattr(tally, outcome) + 1)
                self._progress(tally)
        self._finish(tally, dry_run)

    def _progress(self, tally):
        """A bar on a terminal; on a pipe or a log, a count every BATCH rows."""
        if self.stdout.isatty():
            if tally.done % max(1, tally.total // 200) and tally.done < tally.total:
                return  # redraw about 200 times in all, not once per row
            filled = BAR_WIDTH * tally.done // max(tally.total, 1)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stdout.write(f"\r[{bar}] {tally.done}/{tally.total}", ending="")
            self.stdout.flush()
            if tally.done == tally.total:
                self.stdout.write("")
        elif tally.done % BATCH == 0 and tally.done < tally.total:
            self.stdout.write(f"{tally.done}/{tally.total} secrets processed")

    def _finish(self, tally, dry_run):
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(
            f"{tally.rotated} {verb}, {tally.current} already on the first key, "
            f"{len(tally.unreadable)} unreadable (of {tally.total} stored secrets: passwords "
            "and sign-in tokens)."
        )
        for pk, name, column in tally.unreadable:
            if column == "password_encrypted":
                what = "password"
                fix = f"re-enter the password (smtp_accounts update {pk} --password-stdin)"
            elif column == "bounce_password_encrypted":
                what, fix = "IMAP password", "type the IMAP password again on the account's page"
            else:
                what, fix = "sign-in token", "sign in again on the account's page"
            self.stderr.write(
                f"Account {name!r} (id {pk}): no key in FERNET_KEYS opens its {what}; it was "
                f"left unchanged. Add the key it was saved with to FERNET_KEYS and run this "
                f"again, or {fix}."
            )
        if tally.unreadable:
            raise CommandError(
                f"{len(tally.unreadable)} account(s) could not be re-encrypted; see above."
            )
