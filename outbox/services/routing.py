"""Routing (DESIGN.md, Routing, limits and failover): which account hands a message over.

A row is bound to an account when it is queued, but it only stays with it while that account
can take it. A claimed batch is sent only while its account is not paused and each message,
just before it goes, fits under the account's limits (`admit`, `take`); the others are
handed over: to the next account of the route
that has room, at once, or, when none has, back to the queue due when the first window opens
or pause ends, with last_error saying which account and until when. A throttling reply pauses
the account (Retry-After, else 1 minute doubling to 1 hour). Rows handed over do not count
as an attempt: a pause or a limit never makes a message fail.
"""

import logging
from contextlib import contextmanager
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from smtp_accounts.services.accounts import pause_account, route

from .. import policy
from ..models import Attempt, OutboundMessage
from . import history, limits
from .connections import KeptConnection
from .enqueue import enqueue_jobs, wake_at

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def admit(account, messages):
    """The claimed `messages` that `account` may start on now: all of them, unless it is
    paused or at a limit, when they are all handed over (see hand_over) and [] comes back.
    Each message is then reserved as it is handed to the server (take)."""
    if account.is_paused:
        hand_over(messages, account, _paused_note(account))
        return []
    at_limit = limits.reserve(account, 0, claimed=[m.pk for m in messages])
    if at_limit.opens_at:
        hand_over(messages, account, _limit_note(account, at_limit))
        return []
    return messages


@contextmanager
def connection(account, messages, *, keep):
    """The KeptConnection to send the admitted `messages` on, within the account's
    *Connections at once*; None when other workers hold every one, after handing `messages`
    over (to the next account of the route, else to wait a few seconds)."""
    with limits.connection_slot(account) as held:
        if not held:
            note = (f"“{account.name}” has every connection it may open in use "
                    f"({account.max_connections} at once); waiting for one to close.")
            soon = timezone.now() + timedelta(seconds=policy.CONNECTION_WAIT)
            hand_over(messages, account, note, not_before=soon)
            yield None
            return
        # A capped account's connection is not kept between tasks: idle, it would hold a
        # slot that another worker's mail is waiting for.
        with KeptConnection(account, keep=keep and not account.max_connections) as kept:
            yield kept


def take(account, rest, *, at_once=None):
    """Reserve sends of `account` for the next few (a chunk) of the claimed,
    unsent `rest`, just before they are handed to the server, so a limit holds at the
    server and not only at the claim. `at_once`: reserve up to that many instead (a batch
    call hands them all to the server together). Returns how many may go now; 0 after
    handing `rest` over."""
    # A chunk's sends trail its reservation, so the server may see up to one chunk per
    # worker process early in a window: keep it to 1/100 of the smallest limit (1 below 200,
    # so Exchange's 30 a minute), a Redis call per message only where limits are tight.
    chunk = at_once or max(1, min(policy.LIMIT_CHUNK, min(account.limits.values()) // 100))
    wanted = min(len(rest), chunk)
    reservation = limits.reserve(account, wanted, claimed=[m.pk for m in rest])
    if not reservation.granted:
        hand_over(rest, account, _limit_note(account, reservation))
    return reservation.granted


def take_one(account):
    """Reserve one send of `account` outside the outbox (a test email). Returns None when it
    may go now, else the sentence saying which limit holds it and until when."""
    reservation = limits.reserve(account, 1)
    return None if reservation.granted else _limit_note(account, reservation)


def _limit_note(account, reservation):
    return (f"“{account.name}” is at its {reservation.limit_name} limit until "
            f"{_hhmm(reservation.opens_at)}.")  # fmt: skip


def pause_for_throttling(account, error):
    """Pause `account` after a throttling reply `error` (a Throttled): for its Retry-After,
    else for the backoff. Returns when the pause ends."""
    seconds = error.retry_after or throttle_backoff(account)
    until = timezone.now() + timedelta(seconds=seconds)
    pause_account(account, until, f"The server throttled it: {error.reason}")
    logger.warning("Account %s paused for %d s: %s", account.pk, seconds, error.reason)
    return until


def throttle_backoff(account):
    """Seconds to pause: THROTTLE_BACKOFF_BASE, doubling for every throttled try of the
    account since its last sent message, up to THROTTLE_BACKOFF_CAP."""
    tries = Attempt.objects.filter(account=account)
    last_sent = tries.filter(outcome=Attempt.Outcome.SENT).order_by("-at").values("at")[:1]
    throttled = tries.filter(outcome=Attempt.Outcome.THROTTLED)
    if last_sent:
        throttled = throttled.filter(at__gt=last_sent[0]["at"])
    doublings = max(0, throttled.count() - 1)  # the try that is pausing it is recorded already
    return min(policy.THROTTLE_BACKOFF_CAP, policy.THROTTLE_BACKOFF_BASE * 2 ** min(doublings, 12))


def hand_over(messages, account, note, *, not_before=None):
    """Give claimed, unsent `messages` of `account` to the next account of its route with
    room (see move), else queue them again until the route opens (see wait). Returns the
    account that took them, or None."""
    if (taker := successor(account)) is not None:
        move(messages, taker, note)
    else:
        wait(messages, account, note, not_before=not_before)
    return taker


def move(messages, taker, note):
    """Bind claimed, unsent `messages` to the account `taker` and enqueue them there now;
    `note` (why the previous account could not) stays in last_error until they go."""
    _requeue(messages, account=taker, next_attempt_at=timezone.now(), last_error=note)
    enqueue_jobs([(m.pk, taker.pk, m.account_type) for m in messages])


def wait(messages, account, note, *, not_before=None):
    """Queue claimed, unsent `messages` again, due when the first account of the route may
    send (not before `not_before`, if given); `note` says which account and until when. An
    opening before the scheduler's next tick gets a wake-up at that moment: under a
    per-minute limit, waiting for the tick (every SWEEP_INTERVAL) would leave the account
    idle for up to a third of each minute."""
    opens = max(_first_opening(account), not_before or timezone.now())
    _requeue(messages, next_attempt_at=opens, last_error=note)
    if opens - timezone.now() < timedelta(seconds=policy.SWEEP_INTERVAL):
        wake_at([(m.pk, account.pk, m.account_type) for m in messages], opens)


def successor(account):
    """The first other account of the route that is not paused and has room, or None."""
    for candidate in route(account.account_type).exclude(pk=account.pk):
        if not candidate.is_paused and limits.reserve(candidate, 0).opens_at is None:
            return candidate
    return None


def _requeue(messages, **fields):
    """Queue the claimed rows again with `fields` (their due time …), not counting the claim
    as an attempt; no task is pending for them (the scheduler's tick, or the caller, enqueues
    them). One UPDATE: the tick must never see a row queued and due before `fields` apply,
    or it enqueues a task that finds the row not due and leaves it marked enqueued."""
    OutboundMessage.objects.filter(
        pk__in=[m.pk for m in messages], claim_token=messages[0].claim_token
    ).update(status=Status.QUEUED, lease_until=None, claim_token="", enqueued_at=None,
             attempts=F("attempts") - 1, **fields)  # fmt: skip


def record_throttled(message, error):
    """The history line of a throttled try (it does not count as an attempt)."""
    history.attempt(message, Attempt.Outcome.THROTTLED, code=error.code,
                    reason=error.reason).save()  # fmt: skip


def _first_opening(account):
    """When the first account of the route (this one included) may send again."""
    moments = []
    for candidate in [account, *route(account.account_type).exclude(pk=account.pk)]:
        if candidate.is_paused:
            moments.append(candidate.paused_until)
        elif opens := limits.reserve(candidate, 0).opens_at:
            moments.append(opens)
        else:
            return timezone.now()
    return min(moments)


def _paused_note(account):
    return (f"“{account.name}” is paused until {_hhmm(account.paused_until)} "
            f"({account.pause_reason}).")  # fmt: skip


def _hhmm(moment):
    return timezone.localtime(moment).strftime("%H:%M")
