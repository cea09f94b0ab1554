"""The suppression list and the send path that consults it, against a real aiosmtpd server:
a suppressed recipient never reaches the server, whatever the case of its letters."""

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import services
from outbox.models import OutboundMessage, Suppression
from outbox.services import suppressions
from smtp_accounts.services import request_test_email

Status = OutboundMessage.Status


def test_an_address_is_suppressed_once_whatever_its_case(db):
    first, created = suppressions.suppress(" Ann@Example.COM ", "bounce", note="550 5.1.1")
    again, created_again = suppressions.suppress("ann@example.com", "complaint")

    assert (created, created_again) == (True, False)
    assert again == first and again.reason == "bounce"  # the first entry is kept
    assert first.email == "ann@example.com"
    assert set(suppressions.suppressed_among(["ANN@example.com", "bob@example.com"])) == {
        "ann@example.com"
    }


def test_the_database_refuses_a_second_row_for_one_address(db):
    Suppression.objects.create(email="ann@example.com", reason="manual")
    with pytest.raises(IntegrityError):
        # bulk_create skips save(): the constraint on lower(email) still holds.
        Suppression.objects.bulk_create([Suppression(email="ANN@example.com", reason="manual")])


def test_a_malformed_address_is_refused_with_a_sentence(db):
    with pytest.raises(ValueError, match="'not-an-address' is not a valid email address."):
        suppressions.suppress("not-an-address", "manual")
    assert not Suppression.objects.exists()


def test_unsuppress_takes_an_address_off_the_list(db):
    suppressions.suppress("ann@example.com", "manual")
    assert suppressions.unsuppress("ANN@example.com").email == "ann@example.com"
    with pytest.raises(suppressions.SuppressionNotFound, match="is not on the suppression list"):
        suppressions.unsuppress("ann@example.com")


def send(**fields):
    """Queue a System message and deliver it (tasks run inline; the test's transaction
    never commits, so deliver here)."""
    values = {"account_type": "system", "subject": "Invoice 42", "body": "Hello"}
    message = services.send_email(**{**values, **fields})
    services.deliver_message(message.pk)
    return message


def test_a_suppressed_recipient_is_dropped_and_the_others_get_the_message(ready, smtp_server):
    ready()
    suppressions.suppress("gone@example.org", "bounce")

    message = send(to=["ann@example.org", "GONE@example.org"], cc=["Gone <gone@example.org>"])

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.org"]]
    assert "gone" not in smtp_server.messages[0].message["To"].lower()
    assert message.to == ["ann@example.org", "GONE@example.org"]  # the Mail Log shows both
    dropped, sent = message.history.all()
    assert dropped.outcome == "suppressed" and sent.outcome == "sent"
    assert "gone@example.org is on the suppression list since" in dropped.reason
    assert "(it bounced)" in dropped.reason
    assert [r["email"] for r in dropped.recipients] == ["gone@example.org"]


def test_a_message_left_without_recipients_fails_at_once(ready, smtp_server):
    ready()
    suppressions.suppress("gone@example.org", "complaint")

    message = send(to=["gone@example.org"])

    message.refresh_from_db()
    assert message.status == Status.FAILED and message.error_kind == "permanent"
    assert message.last_error.startswith(
        "Not sent to a suppressed address: gone@example.org is on the suppression list since")
    assert "System Settings › Suppressions" in message.last_error
    assert [a.outcome for a in message.history.all()] == ["suppressed"]
    assert smtp_server.messages == [] and smtp_server.connections == 0  # nothing reached it


def test_a_batch_asks_the_list_once(ready, smtp_server):
    account = ready("campaigns")
    for number in range(2):
        suppressions.suppress(f"gone{number}@example.org", "bounce")

    def queries_for(count):
        for number in range(count):
            services.enqueue_message(account, to=[f"gone{number % 2}@example.org"],
                                     subject="News", body="Hi")  # fmt: skip
        batch = services.claim_batch(account.pk)
        with CaptureQueriesContext(connection) as queries:
            services.deliver_claimed(batch)
        return [q["sql"] for q in queries if "outbox_suppression" in q["sql"]]

    assert len(queries_for(2)) == len(queries_for(8)) == 1
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {Status.FAILED}
    assert smtp_server.messages == []


def test_a_removed_suppression_lets_mail_go_again(ready, smtp_server):
    ready()
    suppressions.suppress("ann@example.org", "manual", note="asked us to stop")
    suppressions.unsuppress("ann@example.org")

    message = send(to=["ann@example.org"])

    message.refresh_from_db()
    assert message.status == Status.SENT and len(smtp_server.messages) == 1


def test_a_test_email_is_not_affected(ready, smtp_server, django_capture_on_commit_callbacks):
    # Verification sends straight through the account's sender, not through the outbox.
    account = ready(verified_at=None)
    suppressions.suppress("admin@example.org", "bounce")

    with django_capture_on_commit_callbacks(execute=True):
        request_test_email(account, to="admin@example.org")

    assert [m.rcpt_tos for m in smtp_server.messages] == [["admin@example.org"]]


def test_the_json_object_has_the_contracts_keys(make_message, make_account):
    message = make_message(make_account(verified_at=timezone.now()))
    suppression, _ = suppressions.suppress("ann@example.com", "bounce", message=message)

    data = suppressions.suppression_as_dict(suppression)

    assert data == {
        "email": "ann@example.com", "reason": "bounce", "note": "",
        "created_at": suppression.created_at.isoformat(), "message": message.pk,
    }  # fmt: skip
