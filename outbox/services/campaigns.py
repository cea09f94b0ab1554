"""Campaigns: one message per address of a list, queued in one transaction (DESIGN.md
"Campaigns and Mailgun batches", `smtp_accounts send --to-list`).

The rows share everything but `to` (and their idempotency key, hence their Message-ID), so
an external account sends them in batch calls. They are written with bulk INSERTs of
INSERT_CHUNK rows and their delivery is enqueued once, on commit: one batch task of the
account (inline without a broker, the same task at once); mail of another type, a task
per message as for send_email.
"""

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from smtp_accounts.services.accounts import ready_account

from .. import policy
from ..models import OutboundMessage
from .enqueue import check_sendable, enqueue_on_commit


def read_address_list(lines):
    """The addresses of a list, one a line: blank lines and lines starting with "#"
    skipped, an address given twice (in any case) kept once, in the first spelling.
    Returns them in order. Raises ValueError naming the line number of a bad address."""
    addresses, seen = [], set()
    for number, line in enumerate(lines, start=1):
        address = line.strip()
        if not address or address.startswith("#"):
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise ValueError(f"Line {number} is not a valid email address; fix it "
                             "or remove it, then send again.") from None  # fmt: skip
        if (folded := address.lower()) not in seen:
            seen.add(folded)
            addresses.append(address)
    return addresses


def queue_campaign(account_type, addresses, *, subject, body, html_body=None, progress=None):
    """Queue one message per address (already read and checked, see read_address_list)
    through the ready account of `account_type`, in one transaction. `progress(done,
    total)` is called after each chunk written. Returns how many were queued.

    Raises NoReadyAccount when no account of that type is ready, ValueError for an unknown
    type or a message that cannot be sent (see enqueue_message)."""
    account = ready_account(account_type)
    now = timezone.now()
    template = OutboundMessage(
        account=account, account_type=account.account_type, from_email=account.from_address,
        subject=subject, body_text=body, body_html=html_body or "", enqueued_at=now,
        next_attempt_at=now,
    )  # fmt: skip
    if addresses:
        check_sendable(_row(template, addresses[0]))
    with transaction.atomic():
        for start in range(0, len(addresses), policy.INSERT_CHUNK):
            chunk = addresses[start : start + policy.INSERT_CHUNK]
            for message in OutboundMessage.objects.bulk_create([_row(template, a) for a in chunk]):
                enqueue_on_commit(message)  # campaign mail: one batch task of the account
            if progress:
                progress(start + len(chunk), len(addresses))
    return len(addresses)


def _row(template, address):
    """A new row like `template`, to `address`, with its own idempotency key."""
    fields = {f.attname: getattr(template, f.attname) for f in OutboundMessage._meta.concrete_fields
              if not f.primary_key}  # fmt: skip
    return OutboundMessage(**{**fields, "to": [address], "idempotency_key": uuid.uuid4().hex})
