"""The delivery engine's actions, used by tasks, the backend, webhooks and commands.

enqueue (write rows, enqueue their delivery) · campaigns (a list at once) · claim · deliver
· batch_calls (many recipients in one call) · connections (kept open per account) · history
(Attempt rows) · events (provider webhooks, bounces) · suppressions · notices (Undelivered,
to the sender) · bounces (bounce mailboxes) · sweep (the scheduler's tick) · retention
(prune old mail).
"""

from .bounces import accounts_with_mailbox, fetch_bounces
from .campaigns import queue_campaign, read_address_list
from .claim import claim_batch, claim_message
from .connections import close_connections
from .deliver import deliver_batches, deliver_claimed, deliver_message, retry_delay
from .enqueue import enqueue_batch, enqueue_message, is_inline, message_as_email, send_email
from .events import apply_pending_events, record_event
from .retention import prune_messages
from .sweep import sweep_outbox

__all__ = [
    "accounts_with_mailbox",
    "apply_pending_events",
    "claim_batch",
    "claim_message",
    "close_connections",
    "deliver_batches",
    "deliver_claimed",
    "deliver_message",
    "enqueue_batch",
    "enqueue_message",
    "fetch_bounces",
    "is_inline",
    "message_as_email",
    "prune_messages",
    "queue_campaign",
    "read_address_list",
    "record_event",
    "retry_delay",
    "send_email",
    "sweep_outbox",
]
