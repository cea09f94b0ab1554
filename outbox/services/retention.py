"""Retention: sent and failed mail older than a cut-off goes, with its history, in chunks."""

from django.db import transaction
from django.utils import timezone

from .. import policy
from ..models import OutboundMessage, PendingEvent

Status = OutboundMessage.Status


def prune_messages(older_than, dry_run=False):
    """Delete sent and failed messages created more than `older_than` (a timedelta) ago,
    with their Attempt rows. Returns how many messages were (or, with dry_run, would be)
    deleted. Each DELETE takes RETENTION_CHUNK ids, so none locks the table for long; queued
    and sending mail is never touched. Pending events older than PENDING_EVENT_LIFETIME
    (their message never appeared) go too."""
    old = OutboundMessage.objects.filter(
        status__in=[Status.SENT, Status.FAILED], created_at__lt=timezone.now() - older_than
    )
    if dry_run:
        return old.count()
    deleted = 0
    while ids := list(old.order_by("pk").values_list("pk", flat=True)[: policy.RETENTION_CHUNK]):
        with transaction.atomic():
            OutboundMessage.objects.filter(pk__in=ids).delete()  # its history cascades
        deleted += len(ids)
    PendingEvent.objects.filter(
        received_at__lt=timezone.now() - policy.PENDING_EVENT_LIFETIME
    ).delete()
    return deleted
