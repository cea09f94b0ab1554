from .account import AccountType, Provider, Security, SmtpAccount
from .outbox import OutboundMessage
from .verification import TestEmail

__all__ = [
    "AccountType",
    "OutboundMessage",
    "Provider",
    "Security",
    "SmtpAccount",
    "TestEmail",
]
