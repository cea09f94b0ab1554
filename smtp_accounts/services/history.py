"""Reading the audit trail: an account's history, a deleted account's, and its wording.

Entries are written by smtp_accounts.audit; this module only reads and describes them, for
the History section, the Deleted accounts page and `smtp_accounts history`.
"""

from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format

from ..audit import CHANGED
from ..models import AccountEvent, SmtpAccount
from .accounts import AccountNotFound, AmbiguousAccount, find_account

__all__ = [
    "account_history",
    "deleted_account_history",
    "deleted_accounts",
    "describe_changes",
    "event_as_dict",
    "find_history",
]

# Names an entry uses that are not (or not yet) fields of SmtpAccount.
_LABELS = {
    "password": "Password",
    "recipient": "Sent to",
    "error": "Reason",
    "identity": "Signed in as",
    "tokens": "Sign-in tokens",
    "paused_until": "Paused until",
    "pause_reason": "Pause reason",
}


def account_history(account):
    """The entries of a living `account`, newest first (a queryset)."""
    return AccountEvent.objects.filter(account_id=account.pk)


def deleted_account_history(name):
    """The entries of the deleted account(s) last named `name`, newest first (a queryset)."""
    return AccountEvent.objects.filter(account__isnull=True, account_name=name)


def deleted_accounts():
    """One `deleted` entry per deleted account, newest first (a queryset)."""
    return AccountEvent.objects.filter(account__isnull=True, action=AccountEvent.Action.DELETED)


def find_history(identifier):
    """(name, entries) of the account whose id or name is `identifier`, else of the deleted
    account last named so. Raises AccountNotFound when neither exists."""
    try:
        account = find_account(identifier)
    except AmbiguousAccount:
        raise
    except AccountNotFound:
        name = str(identifier).strip().replace("\x00", "")
        events = deleted_account_history(name)
        if not events.exists():
            raise AccountNotFound(
                f"No SMTP account, living or deleted, has the id or name {name!r}."
            ) from None
        return name, events
    return account.name, account_history(account)


def event_as_dict(event):
    """An entry as the contract's JSON: `{at, actor, action, changes}`."""
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "changes": event.changes,
    }


def describe_changes(event):
    """[(label, text)] for an entry's changes, as an admin reads them: "old → new" for an
    edit, the one value for other entries, "changed" for a secret. Choices by their labels."""
    rows = []
    for field, change in event.changes.items():
        if change == CHANGED or not isinstance(change, dict):
            rows.append((_label(field), CHANGED))
            continue
        old, new = (_display(field, change.get(side)) for side in ("old", "new"))
        if event.action == AccountEvent.Action.CHANGED or (old and new):
            rows.append((_label(field), f"{old or '—'} → {new or '—'}"))
        else:
            rows.append((_label(field), old or new))
    return rows


def _label(field):
    if field in _LABELS:
        return _LABELS[field]
    try:
        return str(SmtpAccount._meta.get_field(field).verbose_name)
    except FieldDoesNotExist:
        return field.replace("_", " ").capitalize()


def _display(field, value):
    """`value` of `field` in the page's words ("" when blank)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (moment := _moment(field, value)):
        return date_format(timezone.localtime(moment), "M j, Y H:i")
    try:
        choices = dict(SmtpAccount._meta.get_field(field).flatchoices)
    except FieldDoesNotExist:
        choices = {}
    return str(choices.get(value, value))


def _moment(field, value):
    if not field.endswith(("_at", "_until")):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None
