"""Saving, finding and describing accounts."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from ..models import NAME_TAKEN, SmtpAccount, TestEmail

__all__ = [
    "AccountNotFound", "account_as_dict", "delete_account", "find_account", "mailgun_is_configured",
    "save_account", "sender_after_delete",
]


class AccountNotFound(LookupError):
    """No account has that id or name."""


# Not @transaction.atomic: its wrapper's frame would hold the password where error reporters
# that read frames (Sentry-style) find it. `with` keeps it in this frame, marked sensitive.
@sensitive_variables("password")
def save_account(account, *, password=None, user=None):
    """Save `account` (new or edited) and return it.

    `password`: a new plaintext password, or None to keep the stored one. A change of how the
    account connects (see SmtpAccount.CONNECTION_FIELDS) or a new password makes it unverified
    and voids every pending test code, since the old proof no longer applies.
    Raises ValidationError({"name": ...}) when another account took the name meanwhile (the
    form checked it, but two saves may pass that check at the same moment).
    """
    with transaction.atomic():
        return _save_account(account, password, user)


@sensitive_variables("password")
def _save_account(account, password, user):
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
    _save_unique_name(account, fields if account.pk else None)
    account._loaded = {f: getattr(account, f) for f in SmtpAccount.CONNECTION_FIELDS}
    return account


def _save_unique_name(account, update_fields):
    """account.save(); the database's name constraint is the last word on a race."""
    try:
        with transaction.atomic():  # a savepoint: the outer transaction stays usable
            account.save(update_fields=update_fields)
    except IntegrityError as err:
        if "name" not in str(err).lower():
            raise
        raise ValidationError({"name": NAME_TAKEN}) from err


def mailgun_is_configured():
    """True when the deployment has a Mailgun API key, without which no external account
    can send (the form and the list say so)."""
    return bool(settings.MAILGUN_API_KEY)


def sender_after_delete(account):
    """The account that sends `account`'s type of mail once `account` is deleted: the oldest
    active and verified other one of its type (the rule of services.ready_account), or None."""
    return (
        SmtpAccount.objects.filter(
            account_type=account.account_type, is_active=True, verified_at__isnull=False
        )
        .exclude(pk=account.pk).order_by("pk").first()
    )


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
    }
