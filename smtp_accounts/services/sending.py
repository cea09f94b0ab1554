"""`smtp_accounts.services.send_email` (kept for the CRM's callers) and the campaign queue the
`smtp_accounts send --to-list` command uses.

The outbox app owns sending and imports smtp_accounts, never the reverse; these functions are
the one allowed reverse reference (outbox/tests/test_layout.py fails on any other). They
import lazily, at call time, so importing smtp_accounts never imports outbox.
"""


def send_email(**fields):
    """Queue an email; see outbox.services.enqueue.send_email for arguments and errors."""
    from outbox.services.enqueue import send_email as outbox_send_email

    return outbox_send_email(**fields)


def read_address_list(lines):
    """The addresses of a list file; see outbox.services.campaigns.read_address_list."""
    from outbox.services.campaigns import read_address_list as outbox_read_address_list

    return outbox_read_address_list(lines)


def queue_campaign(account_type, addresses, **fields):
    """Queue one message per address; see outbox.services.campaigns.queue_campaign."""
    from outbox.services.campaigns import queue_campaign as outbox_queue_campaign

    return outbox_queue_campaign(account_type, addresses, **fields)
