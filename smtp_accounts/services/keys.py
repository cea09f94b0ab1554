"""Key rotation: re-encrypt stored secrets with the first key of FERNET_KEYS.

Safe to stop and run again: each row is updated on its own, only if its token is still the one
that was read, and rows already on the first key are skipped.
"""

from .. import crypto
from ..models import SmtpAccount

__all__ = ["BATCH", "SECRET_FIELDS", "rotate_secret", "secret_count", "secret_rows"]

BATCH = 500
# Every encrypted column of an account, and what an admin calls it.
SECRET_FIELDS = {"password_encrypted": "password", "bounce_password_encrypted": "IMAP password"}


def rotate_secret(pk, token, *, field="password_encrypted", dry_run=False):
    """Re-encrypt one secret of an account. Returns "rotated" or "current".

    Raises crypto.UndecryptableSecret when no key opens the token (the row is left alone).
    """
    if crypto.is_current(token):
        return "current"
    new_token = crypto.rotate(token)
    if dry_run:
        return "rotated"
    # Only if nobody saved a new secret since we read it (that one is already current).
    updated = SmtpAccount.objects.filter(pk=pk, **{field: token}).update(**{field: new_token})
    return "rotated" if updated else "current"


def secret_count():
    """How many secrets are stored, over every account and SECRET_FIELDS."""
    return sum(SmtpAccount.objects.exclude(**{f: ""}).count() for f in SECRET_FIELDS)


def secret_rows(pks):
    """(id, name, field, token) of each secret the accounts `pks` store, read fresh in
    batches."""
    for start in range(0, len(pks), BATCH):
        chunk = pks[start : start + BATCH]
        rows = SmtpAccount.objects.filter(pk__in=chunk).order_by("pk").values_list(
            "pk", "name", *SECRET_FIELDS
        )
        for pk, name, *tokens in rows:
            for field, token in zip(SECRET_FIELDS, tokens, strict=True):
                if token:
                    yield pk, name, field, token
