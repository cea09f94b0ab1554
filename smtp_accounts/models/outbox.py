"""The outbox: every message the CRM sends, with its delivery state. Nothing is lost silently."""

import uuid

from django.db import models


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
    provider_message_id = models.CharField(max_length=255, blank=True)
    # A worker owns a `sending` row until its lease ends; after that the sweeper may retry it.
    lease_until = models.DateTimeField(null=True, blank=True)
    # A queued row is not due before this time (retry backoff).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, unique=True, default=uuid.uuid4)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["account", "status"]),
        ]

    def __str__(self):
        return f"{self.subject!r} to {', '.join(self.to)} ({self.status})"
