"""Every number of the delivery policy, in one place.

Tests shrink the windows through settings (crm/settings.py reads the environment); nothing
else in outbox defines a policy number.
"""

from datetime import timedelta

from django.conf import settings

# --- Batches (campaign mail) -----------------------------------------------------------------
BATCH_SIZE = 100  # rows one worker claims and sends on one connection
# ... and for an external account: Mailgun takes up to 1,000 recipients in one call
# (recipient-variables), so one claim fills one call.
MAILGUN_BATCH_SIZE = 1000
BATCH_TIME_BUDGET = 60  # seconds; a slower batch puts its unsent rows back in the queue
# Sent rows are saved in groups (one commit per group, not per message). A worker killed
# mid-batch re-sends at most the rows it had claimed and not saved yet, with their
# Message-IDs: a whole batch's, or the last second's when sending is slower than that. Each
# commit waits for the WAL flush; groups of 20 (4 more commits a batch) made the SMTP
# campaign path 1.4x post_office instead of 2.0x (bench/README.md).
SAVE_EVERY = BATCH_SIZE
SAVE_SECONDS = 1.0  # ... or this often, whichever comes first

# --- Campaigns (queue_campaign) -------------------------------------------------------------
INSERT_CHUNK = 1000  # rows per bulk INSERT of a --to-list; also how often progress is shown

# --- Claims and retries ----------------------------------------------------------------------
# How long a worker owns a claimed row: longer than a batch may take (BATCH_TIME_BUDGET plus
# one slow message), so the sweeper never gives a row to a second worker while the first is
# still sending it. The delivery tasks' hard time limit is the same.
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 10
BACKOFF_BASE = 30  # seconds before the first retry, doubling per attempt ...
BACKOFF_CAP = 60 * 60  # ... up to this

# --- Routing ---------------------------------------------------------------------------------
# A throttled account is paused for the server's Retry-After, else for this backoff: 1 minute,
# doubling for each throttled try since its last sent message, up to 1 hour.
THROTTLE_BACKOFF_BASE = 60
THROTTLE_BACKOFF_CAP = 60 * 60
# A limited account's sends are reserved this many at a time, just before they go: one
# Redis call per few messages, and a window's count is ahead of the server by at most these.
LIMIT_CHUNK = 10

# --- The scheduler (one: the rows' next_attempt_at) ------------------------------------------
# Beat's tick enqueues due rows that have no task pending. Retries are up to this late.
SWEEP_INTERVAL = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]["schedule"]  # seconds
SWEEP_LIMIT = 1000  # rows one tick enqueues at most; a backlog takes several ticks
# A row whose task was enqueued this long ago and never ran lost its task (Redis restarted
# empty, a worker dropped it). Longer than a backlog can keep a task waiting in the queue;
# Redis itself re-delivers an unacknowledged task after its visibility_timeout, so a task
# younger than that is never given up for lost.
LOST_AFTER = timedelta(seconds=settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"])

# --- Connections -----------------------------------------------------------------------------
IDLE_SECONDS = 30  # a kept connection unused this long is closed
# Mail of an account whose *Connections at once* are all open elsewhere asks again this soon
# (seconds): a batch holds its connection for a minute at most (BATCH_TIME_BUDGET).
CONNECTION_WAIT = 5

# --- Retention -------------------------------------------------------------------------------
RETENTION_CHUNK = 1000  # message ids per DELETE: no statement locks the table for long
PENDING_EVENT_LIFETIME = timedelta(days=7)  # an event whose message never appears is dropped


def retention():
    """How long sent and failed mail is kept (read at call time: tests override it)."""
    return timedelta(days=settings.SMTP_ACCOUNTS_LOG_RETENTION_DAYS)
