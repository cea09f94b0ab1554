"""Key rotation: re-encrypt stored secrets with the first key of FERNET_KEYS.

Safe to stop and run again: each row is updated on its own, only if its token is still the one
that was read, and rows already on the first key are skipped.
"""

from django.db import transaction

from .. import audit, crypto
from ..models import SmtpAccount

__all__ = ["BATCH", "SECRET_COLUMNS", "rotate_account", "rotate_secret", "secret_rows"]

BATCH = 500
# Every column holding a Fernet token: the password, the OAuth sign-in's tokens and the
# bounce mailbox's password.
SECRET_COLUMNS = ("password_encrypted", *SmtpAccount.TOKEN_FIELDS, "bounce_password_encrypted")


def rotate_account(pk, tokens, *, dry_run=False):
    """Re-encrypt the secrets of account `pk` (`tokens` maps each column to the token read).

    Returns {column: "rotated" | "current" | "unreadable"}. An account whose secrets were
    re-encrypted gets one `key_rotated` audit entry naming them, in the same transaction as
    the new tokens, so a run stopped half-way leaves one entry per account it rotated.
    """
    outcomes = {}
    with transaction.atomic():
        for column, token in tokens.items():
            try:
                outcomes[column] = rotate_secret(pk, token, column=column, dry_run=dry_run)
            except crypto.UndecryptableSecret:
                outcomes[column] = "unreadable"
        rotated = [column for column, outcome in outcomes.items() if outcome == "rotated"]
        if rotated and not dry_run:
            account = SmtpAccount.objects.only("name").get(pk=pk)
            audit.record(account, audit.Action.KEY_ROTATED,
                         {audit.SECRET_FIELDS[column]: audit.CHANGED for column in rotated})
    return outcomes


def rotate_secret(pk, token, *, column="password_encrypted", dry_run=False):
    """Re-encrypt one secret (`column` of account `pk`). Returns "rotated" or "current".

    Raises crypto.UndecryptableSecret when no key opens the token (the row is left alone).
    """
    if crypto.is_current(token):
        return "current"
    new_token = crypto.rotate(token)
    if dry_run:
        return "rotated"
    # Only if nobody saved a new secret since we read it (that one is already current).
    updated = SmtpAccount.objects.filter(pk=pk, **{column: token}).update(**{column: new_token})
    return "rotated" if updated else "current"


def secret_rows(pks):
    """(id, name, column, token) of every stored secret of the accounts `pks`, read fresh
    in batches."""
    for start in range(0, len(pks), BATCH):
        chunk = pks[start : start + BATCH]
        rows = SmtpAccount.objects.filter(pk__in=chunk).order_by("pk").values_list(
            "pk", "name", *SECRET_COLUMNS
        )
        for pk, name, *tokens in rows:
            for column, token in zip(SECRET_COLUMNS, tokens, strict=True):
                if token:
                    yield pk, name, column, token
