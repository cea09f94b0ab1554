from .account import AccountType, Provider, Security, SmtpAccount
from .verification import TestEmail

__all__ = [
    "AccountType",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
