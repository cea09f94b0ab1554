"""The outbox: every message the CRM sends, with its delivery state. Nothing is lost silently."""

import uuid

from django.db import connection, models, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone


class OutboundMessageQuerySet(models.QuerySet):
    """Claims and outcomes: conditional updates, so one worker at a time sends a row."""

    def due(self, now=None):
        """Queued rows whose backoff, if any, is over."""
        now = now or timezone.now()
        return self.filter(status=OutboundMessage.Status.QUEUED, next_attempt_at__lte=now)

    def claim(self, message_id, lease):
        """Claim one due row (queued -> sending, leased for `lease`).

        Returns the row with its account, or None when it is not queued and due (already sent,
        being sent by another worker, failed, or waiting for its retry time).
        """
        token = uuid.uuid4().hex
        if not self.due().filter(pk=message_id).update(**_claim_fields(token, lease)):
            return None
        return self.select_related("account").get(pk=message_id)

    def claim_batch(self, account_id, size, lease):
        """Claim up to `size` due rows of one account, oldest first. Returns them (maybe [])."""
        token = uuid.uuid4().hex
        due = self.due().filter(account_id=account_id).order_by("pk")
        with transaction.atomic():
            if connection.features.has_select_for_update_skip_locked:
                # PostgreSQL: lock the rows first, so concurrent claimers take different
                # ones. (As a subquery of the UPDATE, a LIMIT'ed SKIP LOCKED select may run
                # more than once and claim more than `size` rows.)
                locked = due.select_for_update(skip_locked=True)
                ids = list(locked.values_list("pk", flat=True)[:size])
            else:
                ids = due.values("pk")[:size]  # SQLite: one statement, one writer at a time
            self.filter(pk__in=ids, status=OutboundMessage.Status.QUEUED).update(
                **_claim_fields(token, lease)
            )
        return list(self.select_related("account").filter(claim_token=token).order_by("pk"))

    def mark_sent(self, provider_ids):
        """Record rows as sent. `provider_ids` maps each row id to its provider message id."""
        now = timezone.now()
        provider_id = Case(*(When(pk=pk, then=Value(value)) for pk, value in provider_ids.items()))
        return self.filter(pk__in=provider_ids).update(
            status=OutboundMessage.Status.SENT, sent_at=now, updated_at=now, lease_until=None,
            last_error="", error_kind="", provider_message_id=provider_id,
        )  # fmt: skip

    def finish(self, message, **fields):
        """End a claim with `fields` (status, error …), unless another claim took the row."""
        return self.filter(pk=message.pk, claim_token=message.claim_token).update(
            lease_until=None, updated_at=timezone.now(), **fields
        )

    def put_back(self, messages):
        """Return claimed, untried rows to the queue, as if never claimed."""
        return self.filter(
            pk__in=[message.pk for message in messages], claim_token=messages[0].claim_token
        ).update(
            status=OutboundMessage.Status.QUEUED, lease_until=None, attempts=F("attempts") - 1,
            next_attempt_at=timezone.now(),
        )  # fmt: skip

    def lease_expired(self, now=None):
        """Rows a worker claimed but never finished: it died, or lost its database."""
        now = now or timezone.now()
        return self.filter(status=OutboundMessage.Status.SENDING, lease_until__lt=now)


def _claim_fields(token, lease):
    now = timezone.now()
    return {
        "status": OutboundMessage.Status.SENDING,
        "claim_token": token,
        "lease_until": now + lease,
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }


class OutboundMessage(models.Model):
    """One email on its way out: queued → sending → sent | failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    class ErrorKind(models.TextChoices):
        NONE = "", "—"
        TEMPORARY = "temporary", "Temporary"
        PERMANENT = "permanent", "Permanent"
        CONFIGURATION = "configuration", "Configuration"

    account = models.ForeignKey(
        "smtp_accounts.SmtpAccount",
        null=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    account_type = models.CharField(max_length=20)
    from_email = models.CharField(max_length=400)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=15, choices=ErrorKind.choices, blank=True)
    # Indexed: Mailgun's bounce webhooks find the message by it.
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    # A worker owns a `sending` row until its lease ends; after that the sweeper may retry it.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Which claim owns a `sending` row, so a late worker cannot overwrite a newer attempt.
    claim_token = models.CharField(max_length=32, blank=True, db_index=True)
    # A queued row is not due before this time (retry backoff). The sweeper also moves it to
    # "now" when it re-enqueues the row, so one lost row is not enqueued again at every sweep.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    idempotency_key = models.CharField(max_length=100, unique=True, default=uuid.uuid4)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = OutboundMessageQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["account", "status"]),
        )

    def __str__(self):
        return f"{self.subject!r} to {', '.join(self.to)} ({self.status})"
