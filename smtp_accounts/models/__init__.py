from .account import NAME_TAKEN, AccountType, Provider, Security, SmtpAccount
from .outbox import OutboundMessage
from .state import AccountState, account_state, state_filter
from .verification import TestEmail

__all__ = [
    "NAME_TAKEN",
    "AccountState",
    "AccountType",
    "OutboundMessage",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
    "account_state",
    "state_filter",
]
