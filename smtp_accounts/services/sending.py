"""`smtp_accounts.services.send_email` (kept for the CRM's callers), the campaign queue the
`smtp_accounts send --to-list` command uses, and the limits' count of test emails.

The outbox app owns sending and imports smtp_accounts, never the reverse; this module holds
the only reverse references (outbox/tests/test_layout.py fails on any other). They import
lazily, at call time, so importing smtp_accounts never imports outbox.
"""


def send_email(**fields):
    """Queue an email; see outbox.services.enqueue.send_email for arguments and errors."""
    from outbox.services.enqueue import send_email as outbox_send_email

    return outbox_send_email(**fields)


def reserve_send(account):
    """Count one test email of `account` against its sending limits, which count test emails
    too (DESIGN.md) and live with the outbox's history. Returns None when it may go now, else
    the sentence saying which limit holds it and until when. Raises redis.RedisError when
    the limits' Redis cannot be reached."""
    from outbox.services.routing import take_one

    return take_one(account)


def read_address_list(lines):
    """The addresses of a list file; see outbox.services.campaigns.read_address_list."""
    from outbox.services.campaigns import read_address_list as outbox_read_address_list

    return outbox_read_address_list(lines)


def queue_campaign(account_type, addresses, **fields):
    """Queue one message per address; see outbox.services.campaigns.queue_campaign."""
    from outbox.services.campaigns import queue_campaign as outbox_queue_campaign

    return outbox_queue_campaign(account_type, addresses, **fields)
