from .account import AccountType, Provider, Security, SmtpAccount
from .outbox import OutboundMessage
from .state import AccountState, account_state, state_filter
from .verification import TestEmail

__all__ = [
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
