"""Saving, finding and describing accounts."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import audit
from ..models import NAME_TAKEN, AccountEvent, AccountType, SmtpAccount, TestEmail

__all__ = [
    "AccountNotFound",
    "AmbiguousAccount",
    "NoReadyAccount",
    "account_as_dict",
    "delete_account",
    "find_account",
    "lock_account",
    "mailgun_is_configured",
    "pause_account",
    "ready_account",
    "resume_account",
    "route",
    "save_account",
    "sender_after_delete",
    "sending_account_ids",
]


class AccountNotFound(LookupError):
    """No account has that id or name."""


class AmbiguousAccount(AccountNotFound):
    """One account has that id and another that name."""


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
    audit.record_paused(account, until, reason)


def resume_account(account):
    """End `account`'s pause now. The one place a pause is lifted."""
    paused_until = account.paused_until
    account.paused_until, account.pause_reason = None, ""
    SmtpAccount.objects.filter(pk=account.pk).update(paused_until=None, pause_reason="")
    audit.record_resumed(account, paused_until)


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


# Not @transaction.atomic: its wrapper's frame would hold the password where error reporters
# that read frames (Sentry-style) find it. `with` keeps it in this frame, marked sensitive.
@sensitive_variables("password", "bounce_password")
def save_account(account, *, password=None, user=None, bounce_password=None):
    """Save `account` (new or edited) and return it.

    `password`: a new plaintext password, or None to keep the stored one. A change of how the
    account connects (see SmtpAccount.CONNECTION_FIELDS) or a new password makes it unverified
    and voids every pending test code, since the old proof no longer applies. Leaves one
    audit entry, `created` or `changed` (none for an edit that changed nothing).
    `bounce_password`: the same for the bounce mailbox ("" drops it); a new mailbox forgets
    the last one's error, but leaves the account verified (it does not change sending).
    Raises ValidationError({"name": ...}) when another account took the name meanwhile (the
    form checked it, but two saves may pass that check at the same moment).
    """
    with transaction.atomic():
        return _save_account(account, password, user, bounce_password)


@sensitive_variables("password", "bounce_password")
def _save_account(account, password, user, bounce_password):
    # stored_snapshot locks the account's row first (the one lock order, see lock_account).
    before = audit.stored_snapshot(account.pk) if account.pk else None
    if password is not None:
        account.set_password(password)
    if bounce_password is not None:
        account.set_bounce_password(bounce_password)
    reconnects = account.changed_fields(SmtpAccount.CONNECTION_FIELDS) or password is not None
    # An edit writes only what an edit may change, so a test confirmed (or an error recorded)
    # while the form was open is not overwritten with the values it was loaded with.
    fields = [*SmtpAccount.EDITABLE_FIELDS, "password_encrypted", "bounce_password_encrypted",
              "updated_by", "updated_at"]
    if account.pk and account.changed_fields(SmtpAccount.TOKEN_BOUND_FIELDS):
        # Tokens were granted for one mailbox, server and sign-in: sign in again.
        account.clear_tokens()
        fields += [*SmtpAccount.TOKEN_FIELDS, "oauth_access_token_expires_at", "signed_in_as"]
    if account.changed_fields(SmtpAccount.BOUNCE_FIELDS) or bounce_password is not None:
        account.bounce_error, account.bounce_checked_at = "", None
        fields += ["bounce_error", "bounce_checked_at"]
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
    account._loaded = {f: getattr(account, f) for f in SmtpAccount.LOADED_FIELDS}
    _record_saved(account, before)
    return account


def _record_saved(account, before):
    """`created` (when `before` is None), else `changed` if any field differs from `before`."""
    diff = audit.changes(before or {}, audit.snapshot(account))
    if before is None:
        audit.record(account, audit.Action.CREATED, diff)
    elif diff:
        audit.record(account, audit.Action.CHANGED, diff)


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
    """The account that sends `account`'s type of mail once `account` is deleted: the next
    of its route (the rule of ready_account), or None."""
    return route(account.account_type).exclude(pk=account.pk).first()


@transaction.atomic
def delete_account(account):
    """Delete `account`; its queued outbox rows keep their history (account set to NULL).

    Its audit trail stays, under the name it had last (`deleted` records the settings it
    had, never a secret), so the trail reads as one account's when looked up by that name.
    """
    settings_it_had = audit.changes(audit.snapshot(account, secrets=False), {})
    audit.record(account, audit.Action.DELETED, settings_it_had)
    AccountEvent.objects.filter(account_id=account.pk).update(account_name=account.name)
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
        raise AmbiguousAccount(
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
        "auth_method": account.auth_method,
        "signed_in": account.is_signed_in,
        "verified_at": account.verified_at.isoformat() if account.verified_at else None,
        "updated_at": account.updated_at.isoformat() if account.updated_at else None,
        "priority": account.priority,
        "max_per_minute": account.max_per_minute,
        "max_per_hour": account.max_per_hour,
        "max_per_day": account.max_per_day,
        "paused_until": account.paused_until.isoformat() if account.paused_until else None,
    }
