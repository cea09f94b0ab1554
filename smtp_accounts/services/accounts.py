"""Saving, finding and describing accounts."""

from django.db import transaction

from ..models import SmtpAccount, TestEmail

__all__ = ["AccountNotFound", "account_as_dict", "delete_account", "find_account", "save_account"]


class AccountNotFound(LookupError):
    """No account has that id or name."""


@transaction.atomic
def save_account(account, *, password=None, user=None):
    """Save `account` (new or edited) and return it.

    `password`: a new plaintext password, or None to keep the stored one. A change of how the
    account connects (see SmtpAccount.CONNECTION_FIELDS) or a new password makes it unverified
    and voids every pending test code, since the old proof no longer applies.
    """
    if password is not None:
        account.set_password(password)
    reconnects = account.changed_fields(SmtpAccount.CONNECTION_FIELDS) or password is not None
    # An edit writes only what an edit may change, so a test confirmed (or an error recorded)
    # while the form was open is not overwritten with the values it was loaded with.
    fields = [*SmtpAccount.EDITABLE_FIELDS, "password_encrypted", "updated_by", "updated_at"]
    if account.pk and reconnects:
        account.verified_at = None
        account.last_error = ""
        account.last_error_at = None
        fields += ["verified_at", "last_error", "last_error_at"]
        TestEmail.objects.filter(
            account=account, status__in=[TestEmail.Status.QUEUED, TestEmail.Status.SENT]
        ).update(status=TestEmail.Status.SUPERSEDED)
    if user is not None and user.is_authenticated:
        account.updated_by = user
    account.save(update_fields=fields if account.pk else None)
    account._loaded = {f: getattr(account, f) for f in SmtpAccount.CONNECTION_FIELDS}
    return account


def delete_account(account):
    """Delete `account`; its queued outbox rows keep their history (account set to NULL)."""
    account.delete()


def find_account(identifier):
    """The account whose id or name is `identifier`. Raises AccountNotFound."""
    identifier = str(identifier).strip().replace("\x00", "")
    query = SmtpAccount.objects.filter(name=identifier)
    if identifier.isascii() and identifier.isdigit():
        query = SmtpAccount.objects.filter(pk=int(identifier)) | query
    matches = list(query.order_by("pk")[:2])
    if not matches:
        raise AccountNotFound(f"No SMTP account has the id or name {identifier!r}.")
    if len(matches) > 1:
        # An account may be named "7" while another has id 7: never guess which one is meant.
        raise AccountNotFound(
            f"{identifier!r} is both an account's id and another account's name; use the id "
            f"of the one you mean ({matches[0].pk} or {matches[1].pk})."
        )
    return matches[0]


def account_as_dict(account):
    """The account as plain JSON types, for `--json` output. Never includes a secret."""
    return {
        "id": account.pk,
        "name": account.name,
        "account_type": account.account_type,
        "provider": account.provider,
        "domain": account.domain,
        "email": account.email,
        "from_name": account.from_name,
        "host": account.host,
        "port": account.port,
        "username": account.username,
        "security": account.security,
        "is_active": account.is_active,
        "verified_at": account.verified_at.isoformat() if account.verified_at else None,
        "updated_at": account.updated_at.isoformat() if account.updated_at else None,
        "priority": account.priority,
        "max_per_minute": account.max_per_minute,
        "max_per_hour": account.max_per_hour,
        "max_per_day": account.max_per_day,
        "paused_until": account.paused_until.isoformat() if account.paused_until else None,
    }
