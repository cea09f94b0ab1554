"""Batch calls (DESIGN.md "Campaigns and Mailgun batches"): claimed rows of an account whose
sender takes many recipients in one call (Mailgun) leave in as few calls as they can.

Rows that share From, Subject, bodies, Reply-To and headers (their content) and have one
recipient each go in calls of up to MAILGUN_BATCH_SIZE distinct recipients, each recipient
with its own placeholder values and List-Unsubscribe (so a campaign with personal
unsubscribe links still batches). The call carries no Message-ID: Mailgun gives the batch
one, which is the id its API answers and its webhook events carry (a Message-ID of our own
per recipient would leave the events with ids no row records). Every row records that id; its
`to` stays its one recipient, so a webhook event finds it by id and recipient. A call takes
only as many recipients as the account's limits allow. A call refused for good (Mailgun's
400 for one bad address among 1,000) is split in halves until the bad rows are alone: they
fail with the reason, the rest are sent. Other rows go one by one, as before.
"""

import json
import logging
import time
from email.utils import parseaddr
from itertools import chain

from smtp_accounts.senders import (
    SENDERS,
    BatchRecipient,
    ConfigurationError,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    Throttled,
)

from .. import policy
from . import routing
from .connections import CannotOpen
from .enqueue import message_as_email

logger = logging.getLogger(__name__)

# Headers of a row that are its recipient's own, not part of the shared content: a
# campaign's unsubscribe links are usually personal.
OWN_HEADERS = ("List-Unsubscribe",)


def can_batch(account):
    """True when the account's sender takes many recipients in one call."""
    return SENDERS[account.provider].can_batch


def send_batches(connection, messages, recorder, send_each):
    """Send claimed `messages` of one account: those sharing content in batch calls, the
    others with `send_each(connection, rows, recorder)`. Stops early, as send_each does,
    when the account cannot take the rest (they go on or wait) or the time budget is spent
    (they are put back)."""
    deadline = time.monotonic() + policy.BATCH_TIME_BUDGET
    account, done = messages[0].account, set()  # done: ids recorded sent or failed
    batches, singles = plan(messages, policy.MAILGUN_BATCH_SIZE)
    while batches:
        rest = [*chain.from_iterable(batches), *singles]  # unsent, the next batch first
        if time.monotonic() > deadline:
            return recorder.put_back(rest)
        batch = batches.pop(0)
        granted = _reserve(account, batch, rest)
        if not granted:  # at a limit: routing handed the rest over
            recorder.counts["handed over"] += len(rest)
            return None
        if granted < len(batch):  # the rest of it waits for the next reservation
            batch, batches = batch[:granted], [batch[granted:], *batches]
        try:
            _call(connection, batch, recorder, done)
        except (CannotOpen, ConfigurationError, Throttled) as err:
            connection.discard()  # a half of a split batch may have been sent: not those
            return recorder.cannot_send([m for m in rest if m.pk not in done],
                                        getattr(err, "error", err))  # fmt: skip
    if singles:
        send_each(connection, singles, recorder)
    return None


def plan(messages, size):
    """(batches, singles): lists of rows that can share a call (same content, one distinct
    recipient each, at most `size`), and the rows that go alone."""
    groups, singles = {}, []
    for message in messages:
        if len(message.to) == 1 and not message.cc and not message.bcc:
            groups.setdefault(content_key(message), []).append(message)
        else:
            singles.append(message)
    batches = []
    for group in groups.values():
        if len(group) == 1:
            singles.extend(group)
        else:
            batches.extend(_distinct_recipients(group, size))
    return batches, singles


def content_key(message):
    """What rows of one call must share: everything but the recipient and its own headers."""
    headers = {k: v for k, v in message.headers.items() if k not in OWN_HEADERS}
    return (message.from_email, message.subject, message.body_text, message.body_html,
            tuple(message.reply_to), json.dumps(headers, sort_keys=True))  # fmt: skip


def _distinct_recipients(group, size):
    """`group` in lists of at most `size` rows, none with the same address (any case)
    twice: Mailgun's recipient-variables are keyed by address."""
    batches = []  # [(rows, addresses)]
    for message in group:
        address = parseaddr(message.to[0])[1].lower()
        for rows, addresses in batches:
            if len(rows) < size and address not in addresses:
                break
        else:
            rows, addresses = [], set()
            batches.append((rows, addresses))
        rows.append(message)
        addresses.add(address)
    return [rows for rows, _ in batches]


def _reserve(account, batch, rest):
    """How many of `batch` (the head of `rest`) may go now under the account's limits; 0
    after routing handed `rest` over. The call follows at once, so it reserves them all in
    one step (one-by-one sends reserve in small chunks because their sends trail)."""
    if not account.limits:
        return len(batch)
    return routing.take(account, rest, at_once=len(batch))


def _call(connection, batch, recorder, done):
    """One call for `batch`, recording each row; a call refused for good is split in halves
    until the rows at fault are alone. Raises CannotOpen, ConfigurationError, Throttled."""
    try:
        deliveries = connection.send_batch(_template(batch[0]), [_recipient(m) for m in batch])
    except Throttled:
        raise
    except PermanentFailure as err:
        if len(batch) == 1:
            return _failed(recorder, batch, err, done)
        half = len(batch) // 2
        _call(connection, batch[:half], recorder, done)
        return _call(connection, batch[half:], recorder, done)
    except SendError as err:
        return _failed(recorder, batch, err, done)
    except (CannotOpen, ConfigurationError):
        raise
    except Exception:
        logger.exception("Unexpected error while sending a batch of %d outbox messages", len(batch))
        connection.discard()
        reason = "An unexpected error stopped the send; the worker log has the details."
        return _failed(recorder, batch, TemporaryFailure(reason), done)
    recorder.sent_together(batch, deliveries)
    done.update(m.pk for m in batch)
    return None


def _failed(recorder, batch, error, done):
    for message in batch:
        recorder.fail(message, error)
    done.update(m.pk for m in batch)


def _template(message):
    """The shared EmailMessage of a call: placeholders left for the provider to fill, no
    header that is one recipient's own, no Message-ID (the provider gives the batch one)."""
    email = message_as_email(message, personalize=False)
    for name in ("Message-ID", *OWN_HEADERS):
        email.extra_headers.pop(name, None)
    return email


def _recipient(message):
    own = {name: message.headers[name] for name in OWN_HEADERS if name in message.headers}
    return BatchRecipient(message.to[0], message.merge_data, own)
