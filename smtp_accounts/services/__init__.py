"""Actions shared by views, tasks and commands: `services.save_account(...)`.

One module per concern; the names callers use are imported here explicitly.
Delivery lives in the outbox app; `send_email` below is its one entry point kept here.
"""

from .accounts import (
    AccountNotFound,
    AmbiguousAccount,
    NoReadyAccount,
    account_as_dict,
    delete_account,
    find_account,
    lock_account,
    mailgun_is_configured,
    pause_account,
    ready_account,
    resume_account,
    route,
    save_account,
    sender_after_delete,
    sending_account_ids,
)
from .diagnostics import CheckResult, CheckStep, check_account
from .history import (
    account_history,
    deleted_account_history,
    deleted_accounts,
    describe_changes,
    event_as_dict,
    find_history,
)
from .keys import BATCH, SECRET_COLUMNS, rotate_account, rotate_secret, secret_rows
from .sending import queue_campaign, read_address_list, send_email
from .verification import (
    CODE_LIFETIME,
    MAX_CODE_TRIES,
    TEST_INTERVAL,
    CodeRejected,
    TestEmailThrottled,
    confirm_test_email,
    deliver_test_email,
    failure_hint,
    latest_test,
    request_test_email,
)

__all__ = [
    "account_as_dict",
    "account_history",
    "AccountNotFound",
    "AmbiguousAccount",
    "BATCH",
    "check_account",
    "CheckResult",
    "CheckStep",
    "CODE_LIFETIME",
    "CodeRejected",
    "confirm_test_email",
    "delete_account",
    "deleted_account_history",
    "deleted_accounts",
    "deliver_test_email",
    "describe_changes",
    "event_as_dict",
    "failure_hint",
    "find_account",
    "find_history",
    "latest_test",
    "lock_account",
    "mailgun_is_configured",
    "MAX_CODE_TRIES",
    "NoReadyAccount",
    "pause_account",
    "queue_campaign",
    "read_address_list",
    "ready_account",
    "resume_account",
    "route",
    "request_test_email",
    "rotate_account",
    "rotate_secret",
    "save_account",
    "SECRET_COLUMNS",
    "secret_rows",
    "sender_after_delete",
    "send_email",
    "sending_account_ids",
    "TEST_INTERVAL",
    "TestEmailThrottled",
]
