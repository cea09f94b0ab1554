from .account import NAME_TAKEN, AccountType, AuthMethod, Provider, Security, SmtpAccount
from .audit import AccountEvent
from .state import AccountState, account_state, state_filter
from .verification import TestEmail

__all__ = [
    "NAME_TAKEN",
    "AccountEvent",
    "AccountState",
    "AccountType",
    "AuthMethod",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
    "account_state",
    "state_filter",
]
