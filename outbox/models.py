"""The outbox: every message the CRM sends, its delivery state and its history.

Nothing is lost silently: each try is an Attempt row, and a Mailgun event that arrives before
its message is recorded as sent waits as a PendingEvent. A Suppression is an address the CRM
no longer sends to.
"""

import uuid

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from smtp_accounts.senders import placeholders


class OutboundMessageQuerySet(models.QuerySet):
    def due(self, now=None):
        """Queued rows whose backoff, if any, is over."""
        now = now or timezone.now()
        return self.filter(status=OutboundMessage.Status.QUEUED, next_attempt_at__lte=now)

    def lease_expired(self, now=None):
        """Rows a worker claimed but never finished: it died, or lost its database."""
        now = now or timezone.now()
        return self.filter(status=OutboundMessage.Status.SENDING, lease_until__lt=now)


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
    # This recipient's values for the `%recipient.NAME%` placeholders of subject and bodies
    # (smtp_accounts/senders/placeholders.py): {name: text}.
    merge_data = models.JSONField(default=dict, blank=True)

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
    # The one schedule: a queued row is not due before this time (retry backoff).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a delivery task for this queued row was put on the broker; None = no task pending,
    # so the scheduler's next tick enqueues it once it is due (services/sweep.py).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, unique=True, default=uuid.uuid4)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = OutboundMessageQuerySet.as_manager()

    class Meta:
        # The table predates the outbox app (it began in smtp_accounts): keep its name, so
        # moving the model moved no row (migrations/0001_initial.py).
        db_table = "smtp_accounts_outboundmessage"
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["account", "status"]),
            # The Mail Log (bench/README.md has the plans): its order, newest first, and one
            # account's mail by status (also the accounts list's Last 24 h counts). Its search
            # uses trigram indexes on PostgreSQL (migration 0002_mail_log_indexes).
            models.Index(fields=["created_at", "id"], name="outbox_log_newest_idx"),
            models.Index(fields=["account", "status", "created_at"], name="outbox_log_account_idx"),
        )

    def __str__(self):
        return f"{self.subject!r} to {', '.join(self.to)} ({self.status})"

    @property
    def subject_as_sent(self):
        """The Subject its recipient saw: `%recipient.NAME%` placeholders filled from its
        merge_data (the row keeps the campaign's template, which batches share)."""
        return placeholders.fill(self.subject, self.merge_data)


class Attempt(models.Model):
    """One entry in a message's history: a try to send it, or a later provider event."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        TEMPORARY = "temporary", "Temporary failure"
        PERMANENT = "permanent", "Permanent failure"
        CONFIGURATION = "configuration", "Configuration error"
        THROTTLED = "throttled", "Throttled"
        SUPPRESSED = "suppressed", "Suppressed"
        DELIVERED = "delivered", "Delivered"
        DEFERRED = "deferred", "Deferred"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="history")
    account = models.ForeignKey(
        "smtp_accounts.SmtpAccount", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    account_name = models.CharField(max_length=100, blank=True)  # kept when the account goes
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=15, choices=Outcome.choices)
    code = models.PositiveIntegerField(null=True, blank=True)  # SMTP or HTTP status
    reason = models.TextField(blank=True)  # the server's reply text, or our sentence
    # Per recipient: [{"email": …, "outcome": "accepted"|"refused", "code": int|None,
    # "reason": str}], so one refused recipient of three is on record.
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("at", "pk")
        indexes = (models.Index(fields=["message", "at"]),)

    def __str__(self):
        return f"{self.outcome} at {self.at:%Y-%m-%d %H:%M:%S}"


class PendingEvent(models.Model):
    """A provider event that matched no sent message yet (it beat the batch's save of its
    row); applied when a row with its provider message id is recorded as sent."""

    provider_message_id = models.CharField(max_length=255, db_index=True)
    recipient = models.CharField(max_length=400, blank=True)
    event_type = models.CharField(max_length=20)
    detail = models.TextField(blank=True)  # the provider's explanation (MTA reply, description)
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.event_type} for {self.provider_message_id}"


def normalize_address(address):
    """An address as suppressions store and compare it: stripped and lower case, so
    "Ann@Example.com" and "ann@example.com" are one address."""
    return str(address).strip().lower()


class Suppression(models.Model):
    """An address the CRM no longer sends to: it bounced for good, complained, or an admin
    added it. A send drops it (services/suppressions.py); Remove lets mail go to it again."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "Bounce"
        COMPLAINT = "complaint", "Complaint"
        MANUAL = "manual", "Manual"

    email = models.CharField("Email", max_length=254)  # stored lower case (normalize_address)
    reason = models.CharField("Reason", max_length=10, choices=Reason.choices)
    note = models.TextField("Note", blank=True)  # the bounce's reason, or the admin's words
    message = models.ForeignKey(
        OutboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name="Message",
    )  # fmt: skip
    created_at = models.DateTimeField("Since", default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-pk")
        constraints = (
            # Unique ignoring case even for a row written around save() (an UPDATE, a
            # bulk_create): the database, not only the service, says one address, one row.
            models.UniqueConstraint(
                Lower("email"), name="outbox_suppression_email_ci",
                violation_error_message="This address is already on the suppression list "
                "(addresses are compared ignoring case).",
            ),  # fmt: skip
        )

    def __str__(self):
        return f"{self.email} ({self.reason})"

    def save(self, *args, **kwargs):
        self.email = normalize_address(self.email)
        super().save(*args, **kwargs)
