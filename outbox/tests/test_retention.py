"""Retention: old sent and failed mail goes with its history, in chunks; the rest stays."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import policy, services
from outbox.models import Attempt, OutboundMessage, PendingEvent, Suppression
from outbox.services import suppressions

Status = OutboundMessage.Status


def aged(account, status, days, count=1):
    rows = [services.enqueue_message(account, to=["ann@example.com"], subject="Old", body="Hi")
            for _ in range(count)]  # fmt: skip
    ids = [row.pk for row in rows]
    OutboundMessage.objects.filter(pk__in=ids).update(
        status=status, created_at=timezone.now() - timedelta(days=days)
    )
    Attempt.objects.bulk_create(Attempt(message=row, outcome="sent") for row in rows)
    return ids


def test_prune_deletes_old_sent_and_failed_mail_with_its_history(make_account, monkeypatch):
    account = make_account(verified_at=timezone.now())
    old = aged(account, Status.SENT, 100, count=5) + aged(account, Status.FAILED, 100)
    kept = aged(account, Status.SENT, 10) + aged(account, Status.QUEUED, 100)
    monkeypatch.setattr(policy, "RETENTION_CHUNK", 2)

    assert services.prune_messages(timedelta(days=90), dry_run=True) == 6
    assert OutboundMessage.objects.count() == 8  # a dry run deletes nothing
    with CaptureQueriesContext(connection) as queries:
        assert services.prune_messages(timedelta(days=90)) == 6

    assert sorted(OutboundMessage.objects.values_list("pk", flat=True)) == sorted(kept)
    assert not Attempt.objects.filter(message_id__in=old).exists()
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "smtp_accounts_')]
    assert len(deletes) == 3  # six messages, two ids per DELETE


def test_zero_days_takes_every_sent_and_failed_message(make_account):
    account = make_account(verified_at=timezone.now())
    aged(account, Status.SENT, 0)
    queued = aged(account, Status.QUEUED, 0)

    assert services.prune_messages(timedelta(0)) == 1
    assert list(OutboundMessage.objects.values_list("pk", flat=True)) == queued


def test_events_whose_message_never_appeared_are_dropped_in_time(db):
    PendingEvent.objects.create(provider_message_id="<old@mg>", event_type="bounced",
                                received_at=timezone.now() - timedelta(days=8))  # fmt: skip
    PendingEvent.objects.create(provider_message_id="<new@mg>", event_type="bounced")

    services.prune_messages(timedelta(days=90))

    assert list(PendingEvent.objects.values_list("provider_message_id", flat=True)) == ["<new@mg>"]


def test_a_suppression_outlives_the_pruned_message_that_caused_it(make_account):
    account = make_account(verified_at=timezone.now())
    [old] = aged(account, Status.FAILED, 100)
    suppressions.suppress("ann@example.com", "bounce", message=OutboundMessage(pk=old))

    services.prune_messages(older_than=timedelta(days=90))

    suppression = Suppression.objects.get()
    assert suppression.email == "ann@example.com" and suppression.message is None
