from .account import AccountType, Provider, Security, SmtpAccount
from .audit import AccountEvent
from .outbox import OutboundMessage
from .verification import TestEmail

__all__ = [
    "AccountEvent",
    "AccountType",
    "OutboundMessage",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
