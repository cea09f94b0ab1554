"""Campaign mail through Mailgun in batch calls, personal placeholders and one-click
unsubscribe on both paths — against the Mailgun-like HTTP server and a real aiosmtpd server.

Tasks run inline here (no broker); test_worker.py sends a campaign from a real worker.
"""

import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from outbox import services
from outbox.models import OutboundMessage

Status = OutboundMessage.Status
UNSUBSCRIBE = "https://crm.example.com/unsubscribe/{}"


@pytest.fixture
def mailgun_campaigns(mailgun_server, mailgun_account_for):
    """A ready external Campaigns account on the Mailgun-like server."""
    return mailgun_account_for(mailgun_server, account_type="campaigns",
                               verified_at=timezone.now())  # fmt: skip


@pytest.fixture
def campaign(django_capture_on_commit_callbacks):
    """campaign(recipients, **fields) -> rows queued in one transaction, delivered on commit
    (inline). `recipients` are addresses or (address, merge_data) pairs."""

    def queue(recipients, account_type="campaigns", **fields):
        values = {"subject": "News", "body": "Hello", **fields}
        with django_capture_on_commit_callbacks(execute=True):
            rows = []
            for recipient in recipients:
                to, merge = recipient if isinstance(recipient, tuple) else (recipient, None)
                rows.append(services.send_email(account_type=account_type, to=[to],
                                                merge_data=merge, **values))  # fmt: skip
        return [OutboundMessage.objects.get(pk=row.pk) for row in rows]

    return queue


def readers(count):
    return [f"reader{n}@example.com" for n in range(count)]


def test_a_campaign_leaves_in_one_call_and_each_recipient_sees_only_their_own_address(
    mailgun_server, mailgun_campaigns, campaign
):
    rows = campaign(readers(5))

    [call] = mailgun_server.calls()
    assert call.fields["to"] == readers(5)
    assert list(json.loads(call.field("recipient-variables"))) == readers(5)
    assert [letter["to"] for letter in call.personal()] == readers(5)
    assert {row.status for row in rows} == {Status.SENT}
    assert len({row.provider_message_id for row in rows}) == 1  # the call's id, on every row
    assert [row.to for row in rows] == [[a] for a in readers(5)]  # webhooks match id + recipient
    assert {row.history.get().outcome for row in rows} == {"sent"}


def test_mailgun_gives_the_batch_its_message_id(mailgun_server, mailgun_campaigns, campaign,
                                               admin_client):
    rows = campaign(readers(3))

    [call] = mailgun_server.calls()
    # Our own per-recipient Message-ID would be what webhook events carry, and no row would
    # record it: the batch's one id (Mailgun's answer) is what the rows and events share.
    assert "h:Message-Id" not in call.fields
    assert "h:Message-Id" not in json.loads(call.field("recipient-variables"))[readers(3)[0]]
    [batch_id] = {row.provider_message_id for row in rows}
    assert re.fullmatch(r"<[0-9a-f]{32}@mg\.example\.com>", batch_id)  # the server's answer
    # The Mail Log shows that id as the Message-ID, as the recipients' mail carries it.
    page = admin_client.get(reverse("outbox:detail", args=[rows[0].pk])).content.decode()
    assert escape(batch_id) in page


def test_placeholders_are_filled_by_mailgun_escaped_in_html_and_empty_when_missing(
    mailgun_server, mailgun_campaigns, campaign
):
    campaign(
        [("ann@example.com", {"name": "Ann <& Co>"}), ("bob@example.com", {"name": "Bob"}),
         ("cy@example.com", {})],
        subject="Hi %recipient.name%", body="Dear %recipient.name%,",
        html_body="<p>Dear %recipient.name%,</p>",
    )  # fmt: skip

    [call] = mailgun_server.calls()  # personal values do not split the batch
    letters = {letter["to"]: letter for letter in call.personal()}
    assert letters["ann@example.com"]["subject"] == "Hi Ann <& Co>"
    assert letters["ann@example.com"]["text"] == "Dear Ann <& Co>,"
    assert letters["ann@example.com"]["html"] == "<p>Dear Ann &lt;&amp; Co&gt;,</p>"
    assert letters["bob@example.com"]["subject"] == "Hi Bob"
    assert letters["cy@example.com"]["subject"] == "Hi " and letters["cy@example.com"]["html"] == (
        "<p>Dear ,</p>")  # fmt: skip


def test_placeholders_are_filled_the_same_on_the_smtp_path(ready, smtp_server, campaign):
    ready("campaigns")
    campaign(
        [("ann@example.com", {"name": "Ann <& Co>"}), ("cy@example.com", None)],
        subject="Hi %recipient.name%", body="Dear %recipient.name%,",
        html_body="<p>Dear %recipient.name%,</p>",
    )  # fmt: skip

    letters = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    ann = letters["ann@example.com"]
    assert ann["Subject"] == "Hi Ann <& Co>"
    assert ann.get_body(("plain",)).get_content().strip() == "Dear Ann <& Co>,"
    assert ann.get_body(("html",)).get_content().strip() == "<p>Dear Ann &lt;&amp; Co&gt;,</p>"
    assert letters["cy@example.com"]["Subject"] == "Hi "  # the empty value
    assert OutboundMessage.objects.get(to=["ann@example.com"]).merge_data == {"name": "Ann <& Co>"}


def test_one_click_unsubscribe_headers_on_the_smtp_path(ready, smtp_server):
    ready("system")
    services.deliver_message(services.send_email(
        account_type="system", to=["ann@example.com"], subject="News", body="Hello",
        unsubscribe_url=UNSUBSCRIBE.format("ann"),
    ).pk)  # fmt: skip

    [received] = smtp_server.messages
    assert received.message["List-Unsubscribe"] == "<https://crm.example.com/unsubscribe/ann>"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_personal_unsubscribe_links_still_batch_on_mailgun(
    mailgun_server, mailgun_campaigns, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("ann", "bob"):
            services.send_email(account_type="campaigns", to=[f"{name}@example.com"],
                                subject="News", body="Hello",
                                unsubscribe_url=UNSUBSCRIBE.format(name))  # fmt: skip

    [call] = mailgun_server.calls()
    assert [letter["headers"]["List-Unsubscribe"] for letter in call.personal()] == [
        "<https://crm.example.com/unsubscribe/ann>", "<https://crm.example.com/unsubscribe/bob>"]
    assert {letter["headers"]["List-Unsubscribe-Post"] for letter in call.personal()} == {
        "List-Unsubscribe=One-Click"}  # fmt: skip


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.com/x", "not a url"])
def test_an_unsubscribe_url_must_be_http(ready, url):
    ready("system")
    with pytest.raises(ValueError, match="unsubscribe_url must be an http:// or https:// URL"):
        services.send_email(account_type="system", to=["a@example.com"], subject="S",
                            body="B", unsubscribe_url=url)  # fmt: skip
    assert not OutboundMessage.objects.exists()


def test_a_merge_data_name_must_be_one_a_placeholder_can_spell(ready):
    ready("system")
    with pytest.raises(ValueError, match="cannot be a placeholder"):
        services.send_email(account_type="system", to=["a@example.com"], subject="S",
                            body="B", merge_data={"first name": "Ann"})  # fmt: skip


def test_different_content_goes_in_different_calls(
    mailgun_server, mailgun_campaigns, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # one transaction, one batch task
        for subject in ("Spring news", "Summer news", "Spring news", "Summer news"):
            for to in readers(2):
                services.send_email(account_type="campaigns", to=[to], subject=subject, body="Hi")

    calls = mailgun_server.calls()
    assert sorted((call.field("subject"), len(call.fields["to"])) for call in calls) == [
        ("Spring news", 2), ("Spring news", 2), ("Summer news", 2), ("Summer news", 2)]


def test_an_address_queued_twice_goes_in_separate_calls(
    mailgun_server, mailgun_campaigns, campaign
):
    rows = campaign(["ann@example.com", "bob@example.com", "ANN@example.com"])

    calls = mailgun_server.calls()
    assert sorted(len(call.fields["to"]) for call in calls) == [1, 2]  # never twice in one call
    assert {row.status for row in rows} == {Status.SENT}


def test_one_address_mailgun_refuses_fails_alone_and_the_rest_are_sent(
    mailgun_server, mailgun_campaigns, campaign
):
    mailgun_server.reject_address("reader5@example.com")

    rows = campaign(readers(8))

    by_address = {row.to[0]: row for row in rows}
    bad = by_address.pop("reader5@example.com")
    assert bad.status == Status.FAILED and bad.error_kind == "permanent"
    assert "Mailgun refused the message (400 'to' parameter is not a valid address" in (
        bad.last_error)  # fmt: skip
    assert {row.status for row in by_address.values()} == {Status.SENT}
    delivered = [to for call in mailgun_server.calls() if call.field("recipient-variables")
                 and "reader5@example.com" not in call.fields["to"] for to in call.fields["to"]]
    assert sorted(delivered) == sorted(by_address)  # each of the others sent exactly once


@pytest.mark.parametrize("log", ["in_redis", "in_database"])  # with a broker, and without
def test_a_batch_takes_only_what_the_limit_allows_and_the_rest_waits(
    mailgun_server, mailgun_campaigns, campaign, log, request
):
    request.getfixturevalue(log)
    mailgun_campaigns.max_per_minute = 5
    mailgun_campaigns.save()

    rows = campaign(readers(12))

    [call] = mailgun_server.calls()
    assert call.fields["to"] == readers(5)
    statuses = [row.status for row in rows]
    assert statuses == [Status.SENT] * 5 + [Status.QUEUED] * 7
    waiting = rows[5]
    assert "is at its per-minute limit until" in waiting.last_error
    assert waiting.attempts == 0 and waiting.next_attempt_at > timezone.now()


def test_mailguns_429_pauses_the_account_for_its_retry_after_and_nothing_fails(
    mailgun_server, mailgun_campaigns, campaign
):
    mailgun_server.fail(429, retry_after=120)

    rows = campaign(readers(4))

    mailgun_campaigns.refresh_from_db()
    pause = (mailgun_campaigns.paused_until - timezone.now()).total_seconds()
    assert 100 < pause <= 120
    assert {(row.status, row.attempts) for row in rows} == {(Status.QUEUED, 0)}
    assert len(mailgun_server.calls()) == 1


def test_a_large_campaign_leaves_in_calls_of_the_policy_batch_size(
    mailgun_server, mailgun_campaigns, django_capture_on_commit_callbacks
):
    addresses = [f"reader{n}@example.com" for n in range(2500)]
    with django_capture_on_commit_callbacks(execute=True):
        queued = services.queue_campaign("campaigns", addresses, subject="News", body="Hello")

    assert queued == 2500
    calls = mailgun_server.calls()
    assert [len(call.fields["to"]) for call in calls] == [1000, 1000, 500]
    assert sorted(to for call in calls for to in call.fields["to"]) == sorted(addresses)
    assert OutboundMessage.objects.filter(status=Status.SENT).count() == 2500


def test_a_temporary_mailgun_failure_retries_every_row_of_the_call(
    mailgun_server, mailgun_campaigns, campaign
):
    mailgun_server.fail(500)

    rows = campaign(readers(4))

    assert len(mailgun_server.calls()) == 1  # not split: only a refusal for good is
    assert {(row.status, row.attempts, row.error_kind) for row in rows} == {
        (Status.QUEUED, 1, "temporary")}  # fmt: skip
    assert all("Mailgun could not take the message now (500" in row.last_error for row in rows)
