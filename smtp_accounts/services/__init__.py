"""Actions shared by views, tasks and commands.

One module per concern, re-exported here so callers write `services.send_email(...)`.
"""

from .accounts import account_as_dict, delete_account, find_account, save_account

__all__ = [
    "account_as_dict",
    "delete_account",
    "find_account",
    "save_account",
]
