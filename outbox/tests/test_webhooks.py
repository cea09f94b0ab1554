"""Mailgun's tracking webhook, signed as Mailgun signs it, against mail sent through the
Mailgun-like server: a bounce fails the message, suppresses the address and tells the sender
once; a complaint suppresses; events of a batch reach their own recipient's row; a repeated
or forged event changes nothing."""

import hashlib
import hmac
import json
import secrets
import time

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from outbox import services
from outbox.models import Attempt, OutboundMessage, PendingEvent, Suppression
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


def event(message, name, recipient="ann@example.com", **fields):
    """Mailgun's event-data for `message` (its headers carry the id without brackets)."""
    return {
        "event": name, "id": secrets.token_hex(11), "timestamp": time.time(),
        "recipient": recipient,
        "message": {"headers": {"message-id": message.provider_message_id.strip("<>"),
                                "to": recipient, "subject": "News"}},
        **fields,
    }  # fmt: skip


def bounce(message, severity="permanent", recipient="ann@example.com"):
    delivery_status = {"code": 550, "message": NO_SUCH_USER, "description": "", "attempt-no": 1}
    return event(message, "failed", recipient=recipient, severity=severity, reason="bounce",
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


def notices():
    return OutboundMessage.objects.filter(subject__startswith="Undelivered: ")


@pytest.fixture
def system_account(ready):
    """The ready System account notices go through (on the aiosmtpd server)."""
    return ready("system", name="System mail", email="system@example.com")


def test_a_permanent_bounce_suppresses_the_address_and_tells_the_sender_once(
    signing_key, sent_message, mailgun, system_account, smtp_server,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # the notice goes out inline
        response = post_event(mailgun, bounce(sent_message, recipient="Ann@Example.com"))
    assert response.status_code == 200

    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("ann@example.com", "bounce")
    assert suppression.message == sent_message and NO_SUCH_USER in suppression.note
    notice = notices().get()
    assert notice.subject == "Undelivered: News" and notice.status == Status.SENT
    assert notice.to == [sent_message.account.email]  # no Reply-To: the account's Email
    assert notice.account == system_account
    [received] = smtp_server.messages
    assert received.rcpt_tos == [sent_message.account.email]
    text = received.message.get_body(("plain",)).get_content()
    assert "could not be delivered to Ann@Example.com" in text and NO_SUCH_USER in " ".join(
        text.split())
    bounced = sent_message.history.get(outcome="bounced")
    assert f"The sender was told: notice {notice.pk} to {sent_message.account.email}." in (
        bounced.reason)


def test_a_repeated_event_changes_nothing(signing_key, sent_message, mailgun, system_account,
                                          django_capture_on_commit_callbacks):  # fmt: skip
    same = bounce(sent_message)
    delivered = event(sent_message, "delivered", **{"delivery-status": {"message": "OK"}})
    with django_capture_on_commit_callbacks(execute=True):
        for payload in (delivered, same, delivered, same):  # Mailgun retried both webhooks
            assert post_event(mailgun, payload).status_code == 200

    assert [a.outcome for a in sent_message.history.all()] == ["sent", "delivered", "bounced"]
    assert notices().count() == 1 and Suppression.objects.count() == 1


def test_the_notice_goes_to_the_reply_to(signing_key, mailgun_server, mailgun_account_for,
                                         mailgun, system_account):  # fmt: skip
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    message = services.enqueue_message(account, to=["ann@example.com"], subject="Your quote",
                                       body="Hi", reply_to=["sales@example.com"])  # fmt: skip
    services.deliver_message(message.pk)
    message.refresh_from_db()

    post_event(mailgun, bounce(message))

    assert notices().get().to == ["sales@example.com"]


def test_a_bounced_notice_gets_no_notice(signing_key, mailgun_server, mailgun_account_for,
                                         mailgun):  # fmt: skip
    # The System account itself sends through Mailgun: its notices may bounce too.
    system = mailgun_account_for(mailgun_server, account_type="system", verified_at=timezone.now())
    campaign = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    message = services.enqueue_message(campaign, to=["ann@example.com"], subject="News", body="Hi")
    services.deliver_message(message.pk)
    message.refresh_from_db()
    post_event(mailgun, bounce(message))
    notice = notices().get()
    assert notice.account == system
    services.deliver_message(notice.pk)
    notice.refresh_from_db()

    post_event(mailgun, bounce(notice, recipient=system.email))

    notice.refresh_from_db()
    assert notice.status == Status.FAILED  # the notice's own bounce is recorded ...
    assert notices().count() == 1  # ... and answered by no second notice


def test_without_a_ready_system_account_the_history_says_no_notice_went(
    signing_key, sent_message, mailgun
):
    assert post_event(mailgun, bounce(sent_message)).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.status == Status.FAILED
    assert "No notice went to the sender: no System Account is active and verified" in (
        sent_message.history.get(outcome="bounced").reason)
    assert not notices().exists()


def test_a_complaint_suppresses_the_address_and_keeps_the_message_sent(
    signing_key, sent_message, mailgun, system_account
):
    assert post_event(mailgun, event(sent_message, "complained")).status_code == 200

    sent_message.refresh_from_db()
    assert sent_message.status == Status.SENT
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("ann@example.com", "complaint")
    assert sent_message.history.filter(outcome="complained").exists()
    assert not notices().exists()


def batch_rows(make_message, account, provider_id, recipients):
    """Rows of one Mailgun batch call: one recipient each, one shared Mailgun id."""
    return [make_message(account, to=[address], subject="News", provider_message_id=provider_id)
            for address in recipients]  # fmt: skip


def test_events_of_a_batch_reach_their_own_recipients_row(
    signing_key, mailgun_server, mailgun_account_for, mailgun, make_message
):
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    ann, bob = batch_rows(make_message, account, "<batch-1@mg.example.com>",
                         ["ann@example.com", "bob@example.com"])  # fmt: skip

    post_event(mailgun, bounce(ann, recipient="bob@example.com"))
    post_event(mailgun, event(ann, "delivered", recipient="ann@example.com",
                              **{"delivery-status": {"message": "OK"}}))  # fmt: skip

    ann.refresh_from_db()
    bob.refresh_from_db()
    assert (ann.status, bob.status) == (Status.SENT, Status.FAILED)
    assert [a.outcome for a in ann.history.all()] == ["delivered"]
    assert [a.outcome for a in bob.history.all()] == ["bounced"]
    assert list(Suppression.objects.values_list("email", flat=True)) == ["bob@example.com"]


def test_an_early_event_of_a_batch_waits_for_its_own_recipients_row(
    signing_key, mailgun_server, mailgun_account_for, mailgun, make_message
):
    # The batch's rows are saved in groups: Ann's row is recorded, Bob's not yet.
    account = mailgun_account_for(mailgun_server, verified_at=timezone.now())
    [ann] = batch_rows(make_message, account, "<batch-2@mg.example.com>", ["ann@example.com"])

    post_event(mailgun, bounce(ann, recipient="bob@example.com"))

    assert PendingEvent.objects.get().recipient == "bob@example.com"  # kept, not Ann's
    assert not ann.history.exists()
    [bob] = batch_rows(make_message, account, "<batch-2@mg.example.com>", ["bob@example.com"])
    services.apply_pending_events(["<batch-2@mg.example.com>"])

    bob.refresh_from_db()
    assert bob.status == Status.FAILED and NO_SUCH_USER in bob.last_error
    assert not PendingEvent.objects.exists() and not ann.history.exists()
    assert Suppression.objects.get().email == "bob@example.com"


def test_an_internal_accounts_bounce_gets_no_notice(signing_key, ready, make_message, mailgun):
    # Its server returns bounces to the account's own mailbox by itself.
    system = ready("system")
    message = make_message(system, provider_message_id="<x@example.com>", to=["ann@example.com"])

    post_event(mailgun, bounce(message))

    assert not notices().exists()
    assert Attempt.objects.get(message=message).outcome == "bounced"


@pytest.mark.django_db(transaction=True)  # each campaign's commit sends it, inline
def test_a_real_batch_call_then_its_events_then_the_next_campaign_skips_the_bounced(
    signing_key, mailgun_server, mailgun_account_for, mailgun
):
    # Issue 12's done-when with issue 13's: one call for the campaign, events find their rows.
    mailgun_account_for(mailgun_server, verified_at=timezone.now())
    readers = ["ann@example.com", "bob@example.com", "cy@example.com"]

    def campaign():
        with transaction.atomic():
            return [services.send_email(account_type="campaigns", to=[address], subject="News",
                                        body="Hi") for address in readers]  # fmt: skip

    rows = campaign()
    [call] = mailgun_server.calls()
    assert call.fields["to"] == readers
    ann, bob, cy = [OutboundMessage.objects.get(pk=row.pk) for row in rows]
    assert ann.provider_message_id == bob.provider_message_id == cy.provider_message_id

    post_event(mailgun, bounce(bob, recipient="bob@example.com"))
    post_event(mailgun, event(cy, "delivered", recipient="cy@example.com",
                              **{"delivery-status": {"message": "OK"}}))  # fmt: skip
    statuses = dict(OutboundMessage.objects.values_list("to__0", "status"))
    assert statuses == {"ann@example.com": "sent", "bob@example.com": "failed",
                        "cy@example.com": "sent"}  # fmt: skip
    assert [a.outcome for a in OutboundMessage.objects.get(pk=cy.pk).history.all()] == [
        "sent", "delivered"]  # fmt: skip

    mailgun_server.requests.clear()
    again = campaign()
    [second] = mailgun_server.calls()
    assert second.fields["to"] == ["ann@example.com", "cy@example.com"]  # bob is suppressed
    dropped = OutboundMessage.objects.get(pk=again[1].pk)
    assert dropped.status == Status.FAILED and "suppression list" in dropped.last_error
