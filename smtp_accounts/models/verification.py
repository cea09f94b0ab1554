"""Test emails: the code that proves an account delivers (see services.verification)."""

from django.conf import settings
from django.db import models


class TestEmail(models.Model):
    """One test of an account: a code mailed to `recipient`, kept only as a keyed hash.

    Test emails do not go through the outbox: the code is made by the task that sends it,
    so its plaintext is never stored anywhere, not even in a queued message body.
    """

    __test__ = False  # not a pytest test class, despite the name

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CONFIRMED = "confirmed", "Confirmed"
        BURNED = "burned", "Too many wrong codes"
        SUPERSEDED = "superseded", "Replaced by a newer test"

    account = models.ForeignKey(
        "smtp_accounts.SmtpAccount", on_delete=models.CASCADE, related_name="test_emails"
    )
    recipient = models.EmailField(max_length=254)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    code_hash = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self):
        return f"Test of {self.account} to {self.recipient} ({self.status})"
