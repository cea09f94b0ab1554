"""The outbox in the Django admin: read-only, one query for the list, history inline."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from outbox import services
from outbox.models import Attempt, OutboundMessage, Suppression

LIST = reverse("admin:outbox_outboundmessage_changelist")


def queue(make_account, count):
    start = OutboundMessage.objects.count()
    for number in range(start, start + count):
        account = make_account(name=f"Relay {number}", verified_at=timezone.now())
        services.enqueue_message(account, to=["ann@example.com"], subject=f"Invoice {number}",
                                 body="Hello")  # fmt: skip


def list_queries(admin_client):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(LIST)
    assert page.status_code == 200
    return len(queries), page.content.decode()


def test_the_list_costs_the_same_queries_for_one_row_or_many(admin_client, make_account):
    # Defect 6: the Account column loaded each row's account with a query of its own.
    queue(make_account, 1)
    one, _ = list_queries(admin_client)
    queue(make_account, 5)
    many, page = list_queries(admin_client)

    assert many == one
    assert "Relay 5" in page and "Invoice 5" in page


def test_a_message_shows_its_history_and_cannot_be_made_by_hand(admin_client, make_account):
    queue(make_account, 1)
    row = OutboundMessage.objects.get()
    Attempt.objects.create(message=row, account_name="Relay 0", outcome="temporary", code=451,
                           reason="4.3.0 Try again later")  # fmt: skip

    page = admin_client.get(reverse("admin:outbox_outboundmessage_change", args=[row.pk]))
    assert page.status_code == 200 and "4.3.0 Try again later" in page.content.decode()
    assert admin_client.get(reverse("admin:outbox_outboundmessage_add")).status_code == 403


def test_an_admin_adds_a_suppression_in_any_case_and_it_is_stored_once(admin_client):
    add = reverse("admin:outbox_suppression_add")
    fields = {"email": "Ann@Example.org", "reason": "manual", "note": "asked by phone"}

    assert admin_client.post(add, fields).status_code == 302
    again = admin_client.post(add, {**fields, "email": "ANN@example.ORG"})

    assert again.status_code == 200  # refused beside the field, not a 500
    assert "already on the suppression list" in again.content.decode()
    assert list(Suppression.objects.values_list("email", flat=True)) == ["ann@example.org"]
    page = admin_client.get(reverse("admin:outbox_suppression_changelist"), {"q": "ann@"})
    assert "ann@example.org" in page.content.decode()
