"""Sending limits that hold for every worker process and machine together.

An account's *Messages per minute / hour / day* mean: never more than N handed to its server
in any 60 s / 3,600 s / 86,400 s (a sliding log, not fixed buckets that let 2N through
across a boundary). `reserve(account, n)` takes what may go now and says when more may.

With a broker the log is one Redis sorted set per account (a timestamp per message), read and
written by one Lua script, so every check of every window and the grant are one atomic step.
We chose a short script over the `limits` library because `limits` grants all-or-nothing per
window (we want "3 of your 100 may go now"), checks several windows as separate calls (a grant
could pass the minute and then fail the day), and has no way to seed its log from our history.

Redis may come back empty (a restart without persistence, a flush): the script then says
"not seeded" and the log is rebuilt from the database's history (sent attempts and sent test
emails) before the grant, so a day's count never starts again from zero. Reservations made
but not yet recorded as sent when Redis emptied are the only ones that can be missed.
Without a broker the database history is the log itself, read under a lock on the account.

*Connections at once* are slots in a second sorted set per account (a member per open
connection, scored by when its lease ends, so a dead worker's slot frees itself). Without a
broker mail goes out from the web process itself, and the cap is not counted.
"""

import math
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from smtp_accounts.models import SmtpAccount, TestEmail

from .. import policy
from ..models import Attempt, OutboundMessage

KEY = "smtp-accounts:limits:{pk}"  # the log; KEY + ":seeded" holds the longest window seeded
SLOTS_KEY = "smtp-accounts:connections:{pk}"
# The log and its marker outlive the longest window by this much (seconds) after the last
# reservation: a rebuild from the history misses sends not recorded yet (saved in groups,
# see policy.SAVE_SECONDS), so it must happen only when Redis lost the log, not when an
# account was idle for one window.
KEEP_AFTER_WINDOW = 600

# KEYS: log, marker. ARGV: now_ms, wanted, member prefix, ttl_ms, then (window_ms, max) pairs.
# Returns {granted, opens_ms, window_ms of that opening} (opens 0: there is room left);
# {-1, 0, 0} when the log must be seeded from the database first.
RESERVE_SCRIPT = """
local now, wanted, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for i = 5, #ARGV, 2 do longest = math.max(longest, tonumber(ARGV[i])) end
local seeded = tonumber(redis.call('GET', KEYS[2]) or '-1')
if seeded < longest then return {-1, 0, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local granted = wanted
for i = 5, #ARGV, 2 do
  local used = redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[i])), '+inf')
  granted = math.max(0, math.min(granted, tonumber(ARGV[i + 1]) - used))
end
for n = 1, granted do redis.call('ZADD', KEYS[1], now, ARGV[3] .. n) end
local opens, opens_window = 0, 0
for i = 5, #ARGV, 2 do
  local window, max = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local from = '(' .. (now - window)
  local used = redis.call('ZCOUNT', KEYS[1], from, '+inf')
  if used >= max then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES',
                              'LIMIT', used - max, 1)
    if tonumber(oldest[2]) + window > opens then
      opens, opens_window = tonumber(oldest[2]) + window, window
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {granted, opens, opens_window}
"""

# KEYS: log, marker. ARGV: longest window ms, now ms, ttl ms, then one timestamp (ms) per message
# sent. An empty Redis takes the whole history. A log kept for a shorter window is
# authoritative inside it (it holds reservations not yet recorded as sent): only older
# history is added to it.
SEED_SCRIPT = """
local seeded = tonumber(redis.call('GET', KEYS[2]) or '0')
if seeded == 0 then redis.call('DEL', KEYS[1]) end
local before = tonumber(ARGV[2]) - seeded
for i = 4, #ARGV do
  if tonumber(ARGV[i]) <= before then redis.call('ZADD', KEYS[1], ARGV[i], 'db:' .. i) end
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


# KEYS: slots. ARGV: now_ms, lease_ms, max, member. Returns 1 when `member` got a slot.
SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Reservation:
    granted: int  # how many messages may be handed to the server now
    opens_at: datetime | None = None  # when one more may go, if the account is now at a limit
    window: float | None = None  # the limit's window (seconds, scaled) that opens then

    @property
    def limit_name(self):
        """"per-minute", "hourly" or "daily": the limit the account is at."""
        unscaled = round(self.window / settings.SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE)
        return {60: "per-minute", 3600: "hourly", 86400: "daily"}.get(unscaled, "sending")

    def __bool__(self):
        return self.granted > 0


def windows(account):
    """{window seconds (scaled by SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE): max} the account sets."""
    scale = settings.SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE
    return {seconds * scale: limit for seconds, limit in account.limits.items()}


def reserve(account, n, *, claimed=()):
    """Take up to `n` sends of `account` under its limits. Returns a Reservation: `granted`
    (0..n) and, when the account is now at a limit, `opens_at` (when one more may go) and
    which `window`. `reserve(account, 0)` only asks: `opens_at` is None while there is room.
    Without a broker the rows claimed and being sent are the reservations: pass `claimed`,
    the ids of rows already claimed for this one, so they are not counted twice.
    Raises redis.RedisError when a configured Redis cannot be reached."""
    limits = windows(account)
    if not limits:
        return Reservation(max(n, 0))
    if settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL:
        return _reserve_in_redis(account, n, limits)
    return _reserve_in_database(account, n, limits, claimed)


@contextmanager
def connection_slot(account):
    """Hold one of the account's *Connections at once* while a task's connection is open.
    Yields True, or False when other workers hold every one. The slot is let go at exit, or
    after policy.LEASE if its worker died. Yields True where nothing is counted: no cap, or
    no broker. Raises redis.RedisError when a configured Redis cannot be reached."""
    if not account.max_connections or not settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL:
        yield True
        return
    client, *_scripts, slot_script = _redis()
    key, member = SLOTS_KEY.format(pk=account.pk), uuid.uuid4().hex
    lease = _ms(policy.LEASE.total_seconds())
    held = bool(slot_script(keys=[key], args=[_ms(time.time()), lease, account.max_connections,
                                              member]))  # fmt: skip
    try:
        yield held
    finally:
        if held:
            client.zrem(key, member)


# --- Redis ---------------------------------------------------------------------------------

_clients = {}


def _redis():
    """(client, reserve script, seed script, slot script) per process and URL, made on first
    use. The scripts go by their SHA (EVALSHA), not their text, on every call but the first."""
    url = settings.SMTP_ACCOUNTS_LIMITS_REDIS_URL
    if url not in _clients:
        client = redis.Redis.from_url(url)
        scripts = [client.register_script(s) for s in (RESERVE_SCRIPT, SEED_SCRIPT, SLOT_SCRIPT)]
        _clients[url] = (client, *scripts)
    return _clients[url]


def forget_connections():
    """Drop this process's Redis pools (after a fork, the child must not share sockets)."""
    _clients.clear()


def _reserve_in_redis(account, n, limits):
    keys = [KEY.format(pk=account.pk), KEY.format(pk=account.pk) + ":seeded"]
    pairs = [value for window, limit in limits.items() for value in (_ms(window), limit)]
    for _ in range(2):
        now = _ms(time.time())
        granted, opens, window = _redis()[1](
            keys=keys, args=[now, max(n, 0), uuid.uuid4().hex[:12] + ":", _ttl(limits), *pairs]
        )
        if granted >= 0:
            return Reservation(granted, _moment(opens), window / 1000) if opens else (
                Reservation(granted))
        _seed(account.pk, keys, max(limits))
    raise redis.RedisError("the sending-limit log could not be seeded")


def _seed(account_pk, keys, longest):
    """Rebuild the log from the database history of the last `longest` seconds (also when a
    longer window was set since: the log keeps only the longest window it was asked for)."""
    since = timezone.now() - timedelta(seconds=longest)
    stamps = [_ms(moment.timestamp()) for moment in _sent_times(account_pk, since)]
    _redis()[2](keys=keys, args=[_ms(longest), _ms(time.time()), _ttl({longest: 0}), *stamps])


# --- Database (no broker) ------------------------------------------------------------------


def _reserve_in_database(account, n, limits, claimed=()):
    """The history is the log. The account row's lock orders concurrent reservers; the rows
    a reserver claims are `sending` (counted as in flight) before the lock is released."""
    with transaction.atomic():
        SmtpAccount.objects.select_for_update().filter(pk=account.pk).first()
        now = timezone.now()
        since = now - timedelta(seconds=max(limits))
        stamps = [*_sent_times(account.pk, since), *_in_flight(account.pk, now, claimed)]
        return grant_from_log(sorted(stamps), now, max(n, 0), limits)


def grant_from_log(stamps, now, n, limits):
    """The Redis script's rule over a sorted list of send times (datetimes). Returns a
    Reservation; the granted sends are counted as made `now` (the caller records them)."""
    granted = n
    for window, limit in limits.items():
        used = sum(1 for s in stamps if s > now - timedelta(seconds=window))
        granted = max(0, min(granted, limit - used))
    stamps = stamps + [now] * granted
    opens = Reservation(granted)
    for window, limit in limits.items():
        inside = [s for s in stamps if s > now - timedelta(seconds=window)]
        moment = inside[len(inside) - limit] + timedelta(seconds=window) if (
            len(inside) >= limit) else None
        if moment and (opens.opens_at is None or moment > opens.opens_at):
            opens = Reservation(granted, moment, window)
    return opens


def _sent_times(account_pk, since):
    """When each message and test email of the account was handed to its server."""
    attempts = Attempt.objects.filter(
        account_id=account_pk, outcome=Attempt.Outcome.SENT, at__gt=since
    ).values_list("at", flat=True)
    tests = TestEmail.objects.filter(account_id=account_pk, sent_at__gt=since)
    return [*attempts, *tests.values_list("sent_at", flat=True)]


def _in_flight(account_pk, now, claimed=()):
    """Rows claimed and not finished yet (but `claimed`, the ones being reserved for): about
    to be handed to the server, so counted now."""
    sending = OutboundMessage.objects.filter(
        account_id=account_pk, status=OutboundMessage.Status.SENDING, lease_until__gt=now
    ).exclude(pk__in=list(claimed))
    return [now] * sending.count()


def _ttl(limits):
    return _ms(max(limits) + KEEP_AFTER_WINDOW)


def _ms(seconds):
    return math.floor(seconds * 1000)


def _moment(ms):
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
