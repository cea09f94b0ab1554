"""INTERIM scaffold (maillog branch), replaced by the engine branch's outbox/models.py at
merge: a proxy of today's message model (so `outbox.*_outboundmessage` permissions exist)
and the history model with the names engine.md fixes."""

from django.db import models
from django.utils import timezone

from smtp_accounts.models import OutboundMessage as _Message


class OutboundMessage(_Message):
    class Meta:
        proxy = True


class Attempt(models.Model):
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

    message = models.ForeignKey(OutboundMessage, models.CASCADE, related_name="history")
    account = models.ForeignKey(
        "smtp_accounts.SmtpAccount", models.SET_NULL, null=True, related_name="+"
    )
    account_name = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    code = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["message", "at"])]

    def __str__(self):
        return f"{self.outcome} at {self.at}"
