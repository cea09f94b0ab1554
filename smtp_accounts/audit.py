"""Who changed what: every change to an account leaves one AccountEvent.

`record()` writes an entry as the *current actor*, which each way in sets once with
`acting_as()`: the web middleware (the logged-in user and the client IP, pages and Django's
admin alike), the management commands (`command:<OS user>`); anything else — Celery workers,
beat — is `system`. The services call `record()`, so every path is covered by one call.

Secrets (SECRET_FIELDS) appear only as `{field: "changed"}`: their plaintext, ciphertext or
hash never reaches an entry.
"""

import contextvars
import getpass
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from .models import AccountEvent, SmtpAccount

SYSTEM = "system"
CHANGED = "changed"
Action = AccountEvent.Action

# The account's encrypted fields and the name an entry gives each. A branch that adds a
# secret (OAuth tokens, the bounce password) adds it here, and edits then show "changed".
SECRET_FIELDS = {
    "password_encrypted": "password",
    "oauth_refresh_token_encrypted": "tokens",
    "oauth_access_token_encrypted": "tokens",
    "bounce_password_encrypted": "bounce_password",
}


@dataclass(frozen=True)
class Actor:
    name: str
    ip: str | None = None


_SYSTEM_ACTOR = Actor(SYSTEM)
_actor = contextvars.ContextVar("smtp_accounts_audit_actor", default=None)


@contextmanager
def acting_as(actor, ip=None):
    """Within the block, entries name `actor` (and `ip`, a client address, or None)."""
    token = _actor.set(Actor(actor, ip))
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    """The Actor entries are written as now (`system` unless a caller set one)."""
    return _actor.get() or _SYSTEM_ACTOR


def command_actor():
    """`command:<OS user>` for the user running a management command."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the passwd file
        user = f"uid {os.getuid()}"
    return f"command:{user}"


def record(account, action, changes=None):
    """Write one entry for `account` as the current actor and return it.

    Raises ValueError for an action that is not one of AccountEvent.Action.
    """
    if action not in Action.values:
        raise ValueError(f"Unknown audit action {action!r}.")
    actor = current_actor()
    return AccountEvent.objects.create(
        account_id=account.pk, account_name=account.name, action=action,
        changes=changes or {}, actor=actor.name, actor_ip=actor.ip,
    )  # fmt: skip


def snapshot(account, *, secrets=True):
    """What an entry compares: the editable fields' values and (by default) the secrets'
    ciphertexts, which `changes()` turns into "changed" and never copies."""
    fields = [*SmtpAccount.EDITABLE_FIELDS, *(SECRET_FIELDS if secrets else ())]
    return {field: getattr(account, field) for field in fields}


def stored_snapshot(pk):
    """The snapshot of the row `pk` as stored now, locked until the transaction ends (so two
    edits at once each diff against what the other wrote); {} if there is no such row."""
    fields = [*SmtpAccount.EDITABLE_FIELDS, *SECRET_FIELDS]
    row = SmtpAccount.objects.select_for_update().filter(pk=pk).values(*fields).first()
    return row or {}


def changes(old, new):
    """`{field: {"old": …, "new": …}}` for each field whose value differs between two
    snapshots ({} for "nothing before" or "nothing after"); a secret as "changed"."""
    result = {}
    for field in dict.fromkeys([*old, *new]):
        before, after = old.get(field), new.get(field)
        if before == after or (_blank(before) and _blank(after)):
            continue
        if field in SECRET_FIELDS:
            result[SECRET_FIELDS[field]] = CHANGED
        else:
            result[field] = {"old": _plain(before), "new": _plain(after)}
    return result


def _blank(value):
    return value is None or value == ""


def _plain(value):
    """`value` as JSON keeps it, so an entry reads the same before and after it is saved."""
    return value.isoformat() if isinstance(value, datetime) else value


# --- one documented call per action without a field diff of its own ------------------------
# For the branches that wire sign-in and routing: each is one line where the thing happens.


def record_signed_in(account, identity, previous_identity=None):
    """`signed_in`: OAuth tokens were stored for `account`, signed in as `identity` (the
    mailbox the provider named). The tokens appear only as "changed". Returns the entry."""
    diff = changes({"identity": previous_identity}, {"identity": identity})
    return record(account, Action.SIGNED_IN, {**diff, "tokens": CHANGED})


def record_paused(account, until, reason=""):
    """`paused`: `account` sends nothing until `until` (a datetime) because of `reason`."""
    pause = changes({}, {"paused_until": until, "pause_reason": reason})
    return record(account, Action.PAUSED, pause)


def record_resumed(account, paused_until=None):
    """`resumed`: `account` sends again; `paused_until` is when its pause would have ended."""
    return record(account, Action.RESUMED, changes({"paused_until": paused_until}, {}))
