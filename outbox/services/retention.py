"""INTERIM scaffold (maillog branch): the engine branch's retention module replaces it."""

from django.utils import timezone

from ..models import OutboundMessage


def prune_messages(older_than, dry_run=False):
    old = OutboundMessage.objects.filter(
        status__in=["sent", "failed"], created_at__lt=timezone.now() - older_than
    )
    count = old.count()
    if not dry_run:
        old.delete()
    return count
