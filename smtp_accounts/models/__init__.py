from .account import AccountType, AuthMethod, Provider, Security, SmtpAccount
from .outbox import OutboundMessage
from .verification import TestEmail

__all__ = [
    "AccountType",
    "AuthMethod",
    "OutboundMessage",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
