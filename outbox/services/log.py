"""The Mail Log's reads: which messages, one message's history, and their plain-data form
(the `mail_log` command's JSON). The body is never shown: it may hold a password-reset link.
"""

from django.core.paginator import Paginator
from django.db.models import Q
from django.utils.functional import cached_property

from ..models import OutboundMessage

# Counting every row of a table of millions costs a full scan on each page; the log counts
# this many and says "more than" beyond, which no admin pages through anyway (filters do).
COUNT_LIMIT = 10_000
LIST_FIELDS = (
    "account__name",
    "account_type",
    "from_email",
    "to",
    "subject",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
)


class MessageNotFound(LookupError):
    """No message has that id."""


def filter_messages(*, account=None, status=None, type=None, q=None):
    """The messages newest first (ties by id), narrowed by whichever filters are given:
    `account` (an SmtpAccount or its id), `status`, `type` (account type), `q` (text in To
    or Subject, any case). Returns a QuerySet with the account joined and no bodies."""
    messages = OutboundMessage.objects.select_related("account").only(*LIST_FIELDS, "account_id")
    if account:
        messages = messages.filter(account=account)
    if status:
        messages = messages.filter(status=status)
    if type:
        messages = messages.filter(account_type=type)
    if q:
        messages = messages.filter(Q(to__icontains=q) | Q(subject__icontains=q))
    return messages.order_by("-created_at", "-pk")


class CappedPaginator(Paginator):
    """A Paginator that counts at most COUNT_LIMIT + 1 rows: `is_capped` says the real
    total is larger. A page past the end is the last page (use get_page)."""

    @cached_property
    def count(self):
        # No ORDER BY: counting needs no sort, and the LIMIT stops the scan early.
        return self.object_list.order_by()[: COUNT_LIMIT + 1].count()

    @property
    def is_capped(self):
        return self.count > COUNT_LIMIT

    @property
    def count_limit(self):
        """The most it counts, for "1–50 of more than 10,000"."""
        return f"{COUNT_LIMIT:,}"


def get_message(message_id):
    """One message with its account and its history (oldest first). Raises MessageNotFound."""
    try:
        pk = int(message_id)
        if not 0 < pk < 2**63:  # beyond a bigint PostgreSQL refuses the query itself
            raise ValueError(pk)
        return (
            # Bodies are loaded (one row) because the Message-ID is read from the EmailMessage
            # delivery builds; no page or command output shows them.
            OutboundMessage.objects.select_related("account")
            .prefetch_related("history")
            .get(pk=pk)
        )
    except (OutboundMessage.DoesNotExist, ValueError) as err:
        raise MessageNotFound(f"No message has the id {str(message_id)[:40]!r}.") from err


def timeline(message):
    """The message's attempts and later events, oldest first (a list of Attempt)."""
    return sorted(message.history.all(), key=lambda attempt: (attempt.at, attempt.pk))


def message_as_dict(message):
    """The contract's message object: plain data, times in ISO 8601 or None."""
    return {
        "id": message.pk,
        "account": message.account.name if message.account else None,
        "account_type": message.account_type,
        "from_email": message.from_email,
        "to": list(message.to),
        "subject": message.subject,
        "status": message.status,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
    }


def message_with_history_as_dict(message):
    """`show --json`: the message object plus `history`, oldest first."""
    history = [
        {
            "at": _iso(attempt.at),
            "account": attempt.account_name or None,
            "outcome": attempt.outcome,
            "code": attempt.code,
            "reason": attempt.reason,
        }
        for attempt in timeline(message)
    ]
    return {**message_as_dict(message), "history": history}


def _iso(moment):
    return moment.isoformat() if moment else None
