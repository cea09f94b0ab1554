"""Mailgun's tracking webhook, signed as Mailgun signs it, against mail sent through the
Mailgun-like server: a bounce fails the message, a forged event changes nothing."""

import hashlib
import hmac
import json
import secrets
import time

import pytest
from django.test import Client
from django.utils import timezone

from outbox import services
from outbox.models import OutboundMessage, PendingEvent
from outbox.services import claim

Status = OutboundMessage.Status
WEBHOOK_URL = "/anymail/mailgun/tracking/"  # the address Mailgun is configured with
SIGNING_KEY = "0123456789abcdef0123456789abcdef-test-webhook-key"
NO_SUCH_USER = "550 5.1.1 The email account that you tried to reach does not exist."


@pytest.fixture
def signing_key(settings):
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = SIGNING_KEY
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    return SIGNING_KEY


@pytest.fixture
def sent_message(mailgun_server, mailgun_account_for):
    """A message Mailgun accepted: sent, with Mailgun's id as its provider message id."""
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    message = services.enqueue_message(account, to=["ann@example.com"], subject="News", body="Hi")
    services.deliver_message(message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT and message.provider_message_id
    return message


@pytest.fixture
def mailgun():
    """A client posting as Mailgun does: no session, no CSRF token."""
    return Client(enforce_csrf_checks=True)


def signature(key, timestamp=None, token=None):
    timestamp, token = timestamp or str(int(time.time())), token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()}


def post_event(client, event_data, key=SIGNING_KEY):
    """POST a current (JSON) Mailgun webhook, signed with `key`."""
    payload = {"signature": signature(key), "event-data": event_data}
    url = WEBHOOK_URL
    return client.post(url, json.dumps(payload), content_type="application/json")


def event(message, name, **fields):
    """Mailgun's event-data for `message` (its headers carry the id without brackets)."""
    return {
        "event": name, "id": secrets.token_hex(11), "timestamp": time.time(),
        "recipient": "ann@example.com",
        "message": {"headers": {"message-id": message.provider_message_id.strip("<>"),
                                "to": "ann@example.com", "subject": "News"}},
        **fields,
    }  # fmt: skip


def bounce(message, severity="permanent"):
    delivery_status = {"code": 550, "message": NO_SUCH_USER, "description": "", "attempt-no": 1}
    return event(message, "failed", severity=severity, reason="bounce",
                 **{"delivery-status": delivery_status})  # fmt: skip


def test_a_permanent_bounce_fails_the_sent_message_with_mailgun_reason(
    signing_key, sent_message, mailgun
):
    response = post_event(mailgun, bounce(sent_message))

    assert response.status_code == 200
    sent_message.refresh_from_db()
    assert sent_message.status == Status.FAILED
    assert sent_message.error_kind == "permanent"
    assert sent_message.last_error == (
        f"Mailgun reported that the message to ann@example.com bounced: {NO_SUCH_USER} "
        "Check the address before sending to it again."
    )


def test_a_message_mailgun_refused_to_send_is_failed(signing_key, sent_message, mailgun):
    reject = {"reason": "Recipient is on the domain's bounce list", "description": ""}
    refused = event(sent_message, "rejected", reject=reject)

    assert post_event(mailgun, refused).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.status == Status.FAILED
    assert sent_message.last_error.startswith(
        "Mailgun refused to send the message to ann@example.com: "
        "Recipient is on the domain's bounce list"
    )


def test_a_legacy_bounce_webhook_fails_the_message_too(signing_key, sent_message, mailgun):
    fields = {
        "event": "bounced", "recipient": "ann@example.com", "domain": "mg.example.com",
        "Message-Id": sent_message.provider_message_id, "code": "550", "error": NO_SUCH_USER,
        **signature(signing_key),
    }  # fmt: skip

    response = mailgun.post(WEBHOOK_URL, fields)

    assert response.status_code == 200
    sent_message.refresh_from_db()
    assert sent_message.status == Status.FAILED and NO_SUCH_USER in sent_message.last_error


@pytest.mark.parametrize("wrong_key", ["another-key", ""])
def test_a_wrongly_signed_webhook_is_refused_and_changes_nothing(
    signing_key, sent_message, mailgun, wrong_key
):
    response = post_event(mailgun, bounce(sent_message), key=wrong_key)

    assert response.status_code == 400
    sent_message.refresh_from_db()
    assert sent_message.status == Status.SENT and sent_message.last_error == ""


def test_without_a_signing_key_no_webhook_is_trusted(settings, sent_message, mailgun):
    # Anymail would check signatures against the empty key, which anyone can use.
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = ""
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": ""}
    mailgun.raise_request_exception = False

    response = post_event(mailgun, bounce(sent_message), key="")

    assert response.status_code == 500
    sent_message.refresh_from_db()
    assert sent_message.status == Status.SENT and sent_message.last_error == ""


@pytest.mark.parametrize(
    "name, fields",
    [("delivered", {"delivery-status": {"code": 250, "message": "OK"}}),
     ("failed", {"severity": "temporary", "reason": "generic"}),  # Mailgun retries it
     ("opened", {})],
)  # fmt: skip
def test_delivery_and_other_events_keep_the_message_sent(
    signing_key, sent_message, mailgun, name, fields
):
    assert post_event(mailgun, event(sent_message, name, **fields)).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.status == Status.SENT and sent_message.last_error == ""


def test_a_bounce_for_mail_the_outbox_did_not_send_changes_nothing(
    signing_key, sent_message, mailgun
):
    other = OutboundMessage(provider_message_id="<not-ours@mg.example.com>")
    # A message failed for its own reason keeps that reason.
    OutboundMessage.objects.filter(pk=sent_message.pk).update(
        status=Status.FAILED, last_error="Gave up after 10 attempts."
    )

    assert post_event(mailgun, bounce(other)).status_code == 200
    assert post_event(mailgun, bounce(sent_message)).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.last_error == "Gave up after 10 attempts."


def test_a_bounce_that_beats_the_save_of_its_row_is_kept_and_applied(
    signing_key, mailgun_server, mailgun_account_for, mailgun, monkeypatch
):
    # Defect 3: sent rows are saved in groups; an event arriving before that save matched
    # no row, answered 200, and was gone.
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    message = services.enqueue_message(account, to=["ann@example.com"], subject="News", body="Hi")
    answers = []
    record_sent = claim.mark_sent

    def webhook_arrives_first(token, provider_ids, errors=None):
        for provider_id in provider_ids.values():
            early = OutboundMessage(provider_message_id=provider_id)
            answers.append(post_event(mailgun, bounce(early)).status_code)
        assert PendingEvent.objects.count() == len(provider_ids)  # kept, not dropped
        return record_sent(token, provider_ids, errors)

    monkeypatch.setattr(claim, "mark_sent", webhook_arrives_first)
    services.deliver_claimed(services.claim_batch(account.pk))

    assert answers == [200]
    message.refresh_from_db()
    assert message.status == Status.FAILED and NO_SUCH_USER in message.last_error
    assert [a.outcome for a in message.history.all()] == ["sent", "bounced"]
    assert not PendingEvent.objects.exists()  # applied once, then forgotten


def test_delivery_and_deferral_join_the_history(signing_key, sent_message, mailgun):
    post_event(mailgun, event(sent_message, "delivered",
                              **{"delivery-status": {"code": 250, "message": "OK"}}))  # fmt: skip
    post_event(mailgun, bounce(sent_message, severity="temporary"))

    outcomes = [a.outcome for a in sent_message.history.all()]
    assert outcomes == ["sent", "delivered", "deferred"]
