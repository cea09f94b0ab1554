"""Actions shared by views, tasks and commands: `services.save_account(...)`.

One module per concern; the names callers use are imported here explicitly.
Delivery lives in the outbox app; `send_email` below is its one entry point kept here.
"""

from .accounts import (
    AccountNotFound,
    NoReadyAccount,
    account_as_dict,
    delete_account,
    find_account,
    lock_account,
    pause_account,
    ready_account,
    resume_account,
    route,
    save_account,
    sending_account_ids,
)
from .diagnostics import CheckResult, CheckStep, check_account
from .keys import BATCH, rotate_secret, secret_rows
from .sending import send_email
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
    "AccountNotFound",
    "BATCH",
    "CODE_LIFETIME",
    "CheckResult",
    "CheckStep",
    "CodeRejected",
    "MAX_CODE_TRIES",
    "NoReadyAccount",
    "TEST_INTERVAL",
    "TestEmailThrottled",
    "account_as_dict",
    "check_account",
    "confirm_test_email",
    "delete_account",
    "deliver_test_email",
    "failure_hint",
    "find_account",
    "latest_test",
    "lock_account",
    "pause_account",
    "ready_account",
    "resume_account",
    "route",
    "request_test_email",
    "rotate_secret",
    "save_account",
    "secret_rows",
    "send_email",
    "sending_account_ids",
]
