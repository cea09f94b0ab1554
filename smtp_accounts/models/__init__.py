from .account import AccountType, AuthMethod, Provider, Security, SmtpAccount
from .audit import AccountEvent
from .verification import TestEmail

__all__ = [
    "AccountEvent",
    "AccountType",
    "AuthMethod",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
