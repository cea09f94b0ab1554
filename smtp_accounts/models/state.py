"""The one state an admin reads on each account's row, and the same rule as a query filter.

The two must agree: `account_state()` decides for one loaded account, `state_filter()` is
the database's version of the same rule for the list's `state` filter.
"""

from django.db import models
from django.db.models import F, Q


class AccountState(models.TextChoices):
    READY = "ready", "Ready"
    NEEDS_TEST = "needs_test", "Needs test"
    FAILING = "failing", "Failing"
    INACTIVE = "inactive", "Inactive"
    # PAUSED = "paused", "Paused"  — comes with routing (an account paused until a time):
    # it goes between INACTIVE and FAILING in account_state() and state_filter().


def account_state(account):
    """The AccountState of `account`: Inactive, else Failing when its latest configuration
    error is newer than its verification, else Needs test until verified, else Ready."""
    if not account.is_active:
        return AccountState.INACTIVE
    if account.last_error and (
        account.verified_at is None
        or (account.last_error_at and account.last_error_at > account.verified_at)
    ):
        return AccountState.FAILING
    if account.verified_at is None:
        return AccountState.NEEDS_TEST
    return AccountState.READY


def state_filter(state):
    """A Q selecting the accounts whose account_state() is `state` (an AccountState value)."""
    failing = Q(is_active=True) & ~Q(last_error="") & (
        Q(verified_at__isnull=True) | Q(last_error_at__gt=F("verified_at"))
    )
    return {
        AccountState.INACTIVE: Q(is_active=False),
        AccountState.FAILING: failing,
        AccountState.NEEDS_TEST: Q(is_active=True, verified_at__isnull=True) & ~failing,
        AccountState.READY: Q(is_active=True, verified_at__isnull=False) & ~failing,
    }[state]
