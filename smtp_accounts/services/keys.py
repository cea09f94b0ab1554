"""Key rotation: re-encrypt stored secrets with the first key of FERNET_KEYS.

Safe to stop and run again: each row is updated on its own, only if its token is still the one
that was read, and rows already on the first key are skipped.
"""

from django.db import transaction

from .. import audit, crypto
from ..models import SmtpAccount

__all__ = ["BATCH", "rotate_secret", "secret_rows"]

BATCH = 500


def rotate_secret(pk, token, *, dry_run=False):
    """Re-encrypt one account's password. Returns "rotated" or "current".

    A re-encrypted account gets a `key_rotated` audit entry, in the same transaction as the
    new token, so a run stopped half-way leaves one entry per account it rotated.
    Raises crypto.UndecryptableSecret when no key opens the token (the row is left alone).
    """
    if crypto.is_current(token):
        return "current"
    new_token = crypto.rotate(token)
    if dry_run:
        return "rotated"
    with transaction.atomic():
        # Only if nobody saved a new password since we read it (that one is already current).
        updated = SmtpAccount.objects.filter(pk=pk, password_encrypted=token).update(
            password_encrypted=new_token
        )
        if updated:
            account = SmtpAccount.objects.only("name").get(pk=pk)
            audit.record(account, audit.Action.KEY_ROTATED)
    return "rotated" if updated else "current"


def secret_rows(pks):
    """(id, name, token) of the accounts `pks`, read fresh in batches."""
    for start in range(0, len(pks), BATCH):
        chunk = pks[start : start + BATCH]
        yield from SmtpAccount.objects.filter(pk__in=chunk).order_by("pk").values_list(
            "pk", "name", "password_encrypted"
        )
