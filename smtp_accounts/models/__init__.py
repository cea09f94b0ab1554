from .account import AccountType, AuthMethod, Provider, Security, SmtpAccount
from .audit import AccountEvent
from .outbox import OutboundMessage
from .verification import TestEmail

__all__ = [
    "AccountEvent",
    "AccountType",
    "AuthMethod",
    "OutboundMessage",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
