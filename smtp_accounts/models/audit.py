"""The audit trail: one AccountEvent per change to an account (see smtp_accounts.audit)."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AccountEvent(models.Model):
    """Who did what to an account, when and from where.

    `changes` is `{field: {"old": …, "new": …}}`, a secret only as `{field: "changed"}`.
    The entry outlives its account: `account` becomes NULL and `account_name` keeps the
    name it last had, so a deleted account's history stays readable by that name.
    """

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"
        TEST_REQUESTED = "test_requested", "Test requested"
        TEST_CONFIRMED = "test_confirmed", "Test confirmed"
        TEST_FAILED = "test_failed", "Test failed"
        SIGNED_IN = "signed_in", "Signed in"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        KEY_ROTATED = "key_rotated", "Key rotated"

    account = models.ForeignKey(
        "smtp_accounts.SmtpAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    account_name = models.CharField(max_length=100)
    at = models.DateTimeField(default=timezone.now)
    # A username, `command:<OS user>` or `system`: a text, not a foreign key, so the entry
    # still names who it was after that user is deleted.
    actor = models.CharField(max_length=200)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["account", "-at"]),
            models.Index(fields=["account_name", "-at"]),
        ]

    def __str__(self):
        return f"{self.account_name}: {self.get_action_display()} by {self.actor}"
