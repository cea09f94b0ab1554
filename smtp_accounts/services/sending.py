"""`smtp_accounts.services.send_email`, kept for the CRM's callers.

The outbox app owns sending and imports smtp_accounts, never the reverse; this function is
the one allowed reverse reference (outbox/tests/test_layout.py fails on any other). It imports
lazily, at call time, so importing smtp_accounts never imports outbox.
"""


def send_email(**fields):
    """Queue an email; see outbox.services.enqueue.send_email for arguments and errors."""
    from outbox.services.enqueue import send_email as outbox_send_email

    return outbox_send_email(**fields)
