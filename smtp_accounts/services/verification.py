"""Test email → confirmation code → verified account.

`request_test_email` writes a queued TestEmail and enqueues its delivery; the task calls
`deliver_test_email`, which makes the code, keeps only a keyed hash of it and sends the mail
through the account itself; `confirm_test_email` checks the code the admin pasted back.
Views, tasks and commands all go through these functions.
"""

import logging
import math
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare, get_random_string, salted_hmac
from django.views.decorators.debug import sensitive_variables
from kombu.exceptions import OperationalError

from .. import audit
from ..crypto import UndecryptableSecret
from ..models import SmtpAccount, TestEmail
from ..senders import ConfigurationError, SendError, get_sender
from ..validators import validate_header_safe
from .accounts import lock_account
from .sending import reserve_send

__all__ = [
    "CODE_LIFETIME",
    "MAX_CODE_TRIES",
    "TEST_INTERVAL",
    "CodeRejected",
    "TestEmailThrottled",
    "confirm_test_email",
    "deliver_test_email",
    "failure_hint",
    "latest_test",
    "request_test_email",
]

logger = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(minutes=15)
MAX_CODE_TRIES = 5
# Between two tests of one account: a test mails whatever address the admin typed, so it
# must not become a way to flood an inbox or to hammer a server's login.
TEST_INTERVAL = timedelta(seconds=30)
PENDING = (TestEmail.Status.QUEUED, TestEmail.Status.SENT)

# Next steps for failures whose reason (written by the senders) carries none of its own,
# keyed by words of that reason. Reasons such as a refused login already say what to do.
_HINTS = {
    "timed out": "Check Host and Port, and that a firewall lets the CRM reach the server.",
    "closed unexpectedly": "Check that TLS/SSL matches the port, then try again.",
    "could not talk to": "Check Host and Port, then try again in a minute.",
    "not accepting mail right now": "The server is busy: try again in a few minutes.",
    "deferred": "The server is busy: try again in a few minutes.",
    "refused the recipients": "Check the address the test was sent to.",
}


class TestEmailThrottled(Exception):
    """The account was tested moments ago; `wait_seconds` says how long until the next test."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, wait_seconds):
        self.wait_seconds = wait_seconds
        unit = "second" if wait_seconds == 1 else "seconds"
        super().__init__(f"Wait {wait_seconds} {unit} before sending another test email.")


class CodeRejected(Exception):
    """The code was not accepted. `reason` says why and what to do; `tries_left` how many remain.

    `tries_left` is 0 when this test can no longer be confirmed (a new test is needed).
    """

    def __init__(self, reason, tries_left=0):
        super().__init__(reason)
        self.reason = reason
        self.tries_left = tries_left


def latest_test(account):
    """The account's most recent TestEmail, or None if it was never tested."""
    return TestEmail.objects.filter(account_id=account.pk).order_by("-created_at", "-pk").first()


def failure_hint(reason):
    """A next step for a failure whose text is `reason`, or "" when none is known."""
    text = (reason or "").lower()
    return next((hint for words, hint in _HINTS.items() if words in text), "")


def request_test_email(account, *, to, user=None):
    """Queue a test email of `account` to the address `to` and return its TestEmail.

    Any code still pending for the account stops working. The mail is sent by the task
    `send_test_email` once the transaction commits. Raises ValidationError for a bad address,
    TestEmailThrottled when the account was tested less than TEST_INTERVAL ago.
    """
    to = _clean_address(to)
    with transaction.atomic():
        # Locks the account, so two simultaneous requests cannot both pass the throttle.
        lock_account(account.pk)
        _check_throttle(account)
        TestEmail.objects.filter(account_id=account.pk, status__in=PENDING).update(
            status=TestEmail.Status.SUPERSEDED
        )
        test = TestEmail.objects.create(
            account_id=account.pk, recipient=to, requested_by=_known_user(user)
        )
        audit.record(account, audit.Action.TEST_REQUESTED, audit.changes({}, {"recipient": to}))
        transaction.on_commit(lambda: _enqueue(test))
    return test


@sensitive_variables("code")
def deliver_test_email(test_id):
    """Make the code, send the test email through its account and record sent or failed.

    Does nothing when the test is no longer queued (replaced, or already handled by an
    earlier delivery of the same task). Never raises for a failed send: the reason is kept
    on the TestEmail (and on the account for a configuration problem).
    """
    test = TestEmail.objects.select_related("account").filter(pk=test_id).first()
    if test is None or test.status != TestEmail.Status.QUEUED:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    try:
        if held := reserve_send(test.account):  # a test email counts toward the limits
            return _record_failure(test, f"{held} Send the test again after that.")
        with get_sender(test.account) as sender:
            sender.send(_compose(test, code))
    except (ConfigurationError, UndecryptableSecret) as err:
        _record_failure(test, getattr(err, "reason", str(err)), account_problem=True)
    except SendError as err:
        _record_failure(test, err.reason)
    except Exception:
        logger.exception("Test email %s failed unexpectedly", test.pk)
        _record_failure(
            test,
            "The test email could not be sent because of an unexpected error; "
            "the details are in the server log.",
        )
    else:
        _record_sent(test, code)


@sensitive_variables("code")
def confirm_test_email(account, code):
    """Check `code` against the account's latest test; on success verify the account.

    Returns the confirmed TestEmail (and sets `account.verified_at`). Raises CodeRejected
    with the reason and the tries left. Each wrong code counts once, even when two arrive
    at the same moment; after MAX_CODE_TRIES wrong codes the code is burned.
    """
    code = "".join(str(code or "").split()).replace("-", "")
    with transaction.atomic():
        lock_account(account.pk)  # before its TestEmail: the one lock order (see lock_account)
        test = (
            TestEmail.objects.select_for_update()
            .filter(account_id=account.pk)
            .order_by("-created_at", "-pk")
            .first()
        )
        _check_confirmable(test)
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise CodeRejected(
                "Enter the six-digit code from the test email.", MAX_CODE_TRIES - test.attempts
            )
        if constant_time_compare(test.code_hash, _hash_code(test, code, test.code_hash)):
            return _accept(account, test)
        rejection = _count_wrong_try(test)
    # Raised outside the atomic block, so the counted try is committed, not rolled back.
    raise rejection


def _clean_address(to):
    to = (to or "").strip()
    if not to:
        raise ValidationError("Enter the email address the test should go to.", code="required")
    validate_email(to)
    validate_header_safe(to)
    return to


def _known_user(user):
    return user if user is not None and user.is_authenticated else None


def _check_throttle(account):
    """Raise TestEmailThrottled within TEST_INTERVAL of the account's last test email that
    went out (or may still go: queued). One that failed before sending holds nothing up: the
    admin fixes the setting and tries again at once."""
    latest = (
        TestEmail.objects.filter(account_id=account.pk)
        .filter(Q(sent_at__isnull=False) | Q(status=TestEmail.Status.QUEUED))
        .order_by("-created_at", "-pk").first()
    )
    if latest is None:
        return
    remaining = (latest.sent_at or latest.created_at) + TEST_INTERVAL - timezone.now()
    if remaining > timedelta(0):
        raise TestEmailThrottled(max(1, math.ceil(remaining.total_seconds())))


def _enqueue(test):
    # Imported here: tasks import services, so a module-level import would be circular.
    from .. import tasks

    try:
        tasks.send_test_email.delay(test.pk)
    except OperationalError:
        logger.exception("Could not enqueue test email %s", test.pk)
        _mark_failed(
            test,
            "The mail queue could not be reached, so the test email was not sent. "
            "Try again in a minute; if it keeps failing, check that the Celery broker "
            "(CELERY_BROKER_URL) is running.",
        )


@sensitive_variables("code")
def _hash_code(test, code, stored=""):
    """`hmac-sha256$salt$hexdigest` of `code`, keyed by SECRET_KEY with the salt in `stored`
    (a new random salt when `stored` is empty). The test's id is mixed in, so a hash copied
    onto another test does not match there."""
    salt = stored.split("$")[1] if stored.count("$") == 2 else get_random_string(16)
    digest = salted_hmac(
        f"smtp_accounts.test_email.{salt}", f"{test.pk}:{code}", algorithm="sha256"
    ).hexdigest()
    return f"hmac-sha256${salt}${digest}"


def _compose(test, code):
    account = test.account
    body = (
        f"This is a test email from the CRM, sent through the SMTP account "
        f"\u201c{account.name}\u201d ({account.server_label}).\n"
        f"\n"
        f"Confirmation code: {code}\n"
        f"\n"
        f"Paste the code into the test pop-up and click Confirm to finish setting up the "
        f"account. The code is valid for {CODE_LIFETIME.seconds // 60} minutes.\n"
        f"If you did not ask for this test, you can ignore this email.\n"
    )
    return EmailMessage(
        subject=f"Test email from the CRM: {account.name}",
        body=body,
        from_email=account.from_address,
        to=[test.recipient],
        headers={"Auto-Submitted": "auto-generated"},
    )


@sensitive_variables("code")
def _record_sent(test, code):
    now = timezone.now()
    # Conditional: if a newer test replaced this one while it was being sent, keep it replaced.
    TestEmail.objects.filter(pk=test.pk, status=TestEmail.Status.QUEUED).update(
        status=TestEmail.Status.SENT,
        code_hash=_hash_code(test, code),
        sent_at=now,
        expires_at=now + CODE_LIFETIME,
        error="",
    )
    logger.info("Test email %s of account %s sent", test.pk, test.account_id)


def _mark_failed(test, reason):
    """Fail `test` with `reason` if it is still queued, with its `test_failed` entry."""
    with transaction.atomic():
        failed = TestEmail.objects.filter(pk=test.pk, status=TestEmail.Status.QUEUED).update(
            status=TestEmail.Status.FAILED, error=reason
        )
        if failed:
            changes = audit.changes({}, {"recipient": test.recipient, "error": reason})
            audit.record(test.account, audit.Action.TEST_FAILED, changes)


def _record_failure(test, reason, *, account_problem=False):
    _mark_failed(test, reason)
    if account_problem:
        test.account.record_error(reason)
    logger.warning("Test email %s of account %s failed: %s", test.pk, test.account_id, reason)


def _check_confirmable(test):
    """Raise CodeRejected unless `test` is sent, unexpired and not burned."""
    status = test.status if test else None
    if status == TestEmail.Status.SENT and test.expires_at <= timezone.now():
        raise CodeRejected(
            f"This code has expired (codes are valid for {CODE_LIFETIME.seconds // 60} "
            "minutes). Send a new test."
        )
    if status == TestEmail.Status.SENT and test.attempts < MAX_CODE_TRIES:
        return
    raise CodeRejected(_NOT_CONFIRMABLE.get(status, _NOT_CONFIRMABLE[None]))


_NOT_CONFIRMABLE = {
    None: "No test email is waiting for a code. Send a test first.",
    TestEmail.Status.QUEUED: "The test email has not been sent yet. Wait for it to arrive, "
    "then enter its code.",
    TestEmail.Status.FAILED: "The last test email could not be sent, so there is no code to "
    "confirm. Fix the account and send a new test.",
    TestEmail.Status.SENT: f"This code no longer works after {MAX_CODE_TRIES} wrong tries. "
    "Send a new test.",
    TestEmail.Status.BURNED: f"This code no longer works after {MAX_CODE_TRIES} wrong tries. "
    "Send a new test.",
    TestEmail.Status.SUPERSEDED: "This code was replaced by a newer test or by a change to "
    "the account. Send a new test.",
    TestEmail.Status.CONFIRMED: "This code was already used. Send a new test to check the "
    "account again.",
}


def _accept(account, test):
    now = timezone.now()
    accepted = TestEmail.objects.filter(
        pk=test.pk, status=TestEmail.Status.SENT, attempts__lt=MAX_CODE_TRIES
    ).update(status=TestEmail.Status.CONFIRMED, confirmed_at=now)
    if not accepted:  # burned or replaced a moment ago, by a request that got there first
        test.refresh_from_db()
        _check_confirmable(test)
    SmtpAccount.objects.filter(pk=account.pk).update(
        verified_at=now, last_error="", last_error_at=None
    )
    verified = audit.changes({"verified_at": account.verified_at}, {"verified_at": now})
    audit.record(account, audit.Action.TEST_CONFIRMED, verified)
    account.verified_at, account.last_error, account.last_error_at = now, "", None
    test.status, test.confirmed_at = TestEmail.Status.CONFIRMED, now
    return test


def _count_wrong_try(test):
    """Count one wrong try (atomically, so simultaneous tries each count); return the
    CodeRejected to raise. The last allowed wrong try burns the code."""
    TestEmail.objects.filter(pk=test.pk).update(attempts=F("attempts") + 1)
    test.refresh_from_db(fields=["attempts"])
    tries_left = max(0, MAX_CODE_TRIES - test.attempts)
    if tries_left == 0:
        TestEmail.objects.filter(pk=test.pk, status=TestEmail.Status.SENT).update(
            status=TestEmail.Status.BURNED
        )
        return CodeRejected(
            "That code is not right, and that was the last try: the code no longer works. "
            "Send a new test."
        )
    plural = "try" if tries_left == 1 else "tries"
    return CodeRejected(f"That code is not right. {tries_left} {plural} left.", tries_left)
