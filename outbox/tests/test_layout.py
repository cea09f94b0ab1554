"""Two rooms, imports one way: outbox uses smtp_accounts, never the reverse."""

import re
from pathlib import Path

SMTP_ACCOUNTS = Path(__file__).resolve().parents[2] / "smtp_accounts"
# The one module allowed reverse references: services.send_email, kept for the CRM's
# callers, and the limits' count of test emails; both import at call time.
ALLOWED = {SMTP_ACCOUNTS / "services" / "sending.py"}
IMPORT = re.compile(r"^\s*(from\s+outbox[\s.]|import\s+outbox\b)", re.M)


def test_smtp_accounts_never_imports_outbox():
    offenders = [
        str(path.relative_to(SMTP_ACCOUNTS.parent))
        for path in SMTP_ACCOUNTS.rglob("*.py")
        if path not in ALLOWED and IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_the_allowed_reference_is_lazy_and_works(db):
    source = (SMTP_ACCOUNTS / "services" / "sending.py").read_text()
    assert not re.search(r"^(from|import) outbox", source, re.M)  # at call time only
    from outbox.services import enqueue
    from smtp_accounts import services

    assert services.send_email.__doc__ and enqueue.send_email.__name__ == "send_email"
