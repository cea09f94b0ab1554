"""Saving, finding and describing accounts."""

from django.db import transaction
from django.utils import timezone

from ..models import AccountType, SmtpAccount, TestEmail

__all__ = [
    "AccountNotFound",
    "NoReadyAccount",
    "account_as_dict",
    "delete_account",
    "find_account",
    "lock_account",
    "pause_account",
    "ready_account",
    "resume_account",
    "route",
    "save_account",
    "sending_account_ids",
]


class AccountNotFound(LookupError):
    """No account has that id or name."""


class NoReadyAccount(LookupError):
    """No active and verified account can send this mail."""

    def __init__(self, account_type, account=None):
        if account is None:
            kind = AccountType(account_type).label.removesuffix(" Account")
            reason = f"There is no active and verified {kind} account"
        else:
            reason = f"The account “{account.name}” is not active and verified"
        super().__init__(
            f"{reason}, so the email was not sent. Add one under System Settings > SMTP "
            f"Accounts, or test and confirm an existing one."
        )
        self.account_type = account_type


def ready_account(account_type):
    """The account that sends mail of `account_type`: the first of its route.

    Raises ValueError for an unknown type, NoReadyAccount when no account of it is ready.
    """
    if account_type not in AccountType.values:
        raise ValueError(
            f"Unknown account type {account_type!r}; use one of {', '.join(AccountType.values)}."
        )
    account = route(account_type).first()
    if account is None:
        raise NoReadyAccount(account_type)
    return account


def route(account_type):
    """The ready accounts of `account_type` in the order they take mail: lowest Priority
    first, then the oldest (DESIGN.md, Routing). Paused ones are in it too."""
    ready = _ready_accounts().filter(account_type=account_type)
    return ready.order_by("priority", "created_at", "pk")


def sending_account_ids():
    """Ids of the accounts that send each type's mail now: the first of each route that is
    not paused."""
    now, first = timezone.now(), {}
    for account in _ready_accounts().order_by("priority", "created_at", "pk"):
        if not (account.paused_until and account.paused_until > now):
            first.setdefault(account.account_type, account.pk)
    return set(first.values())


def pause_account(account, until, reason):
    """Pause `account` until `until` (it sends nothing before), saying why. The one place a
    pause is written: an audit entry belongs here."""
    account.paused_until, account.pause_reason = until, reason
    SmtpAccount.objects.filter(pk=account.pk).update(paused_until=until, pause_reason=reason)


def resume_account(account):
    """End `account`'s pause now. The one place a pause is lifted."""
    account.paused_until, account.pause_reason = None, ""
    SmtpAccount.objects.filter(pk=account.pk).update(paused_until=None, pause_reason="")


def _ready_accounts():
    return SmtpAccount.objects.filter(is_active=True, verified_at__isnull=False)


def lock_account(account_id):
    """Lock the account's row until the transaction ends (call inside transaction.atomic).

    The one lock order for an account and its TestEmail rows: the account first. Every
    function that changes both takes this lock before touching a TestEmail, so two of them
    never wait for each other (PostgreSQL would abort one with "deadlock detected").
    Raises SmtpAccount.DoesNotExist when the account is gone.
    """
    SmtpAccount.objects.select_for_update().filter(pk=account_id).values_list("pk").get()


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
    if account.pk:
        lock_account(account.pk)
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
