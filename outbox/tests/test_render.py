"""The batch renderer: a campaign's MIME built once, To, Date and Message-ID per message.

Every message it makes from a template must be the message Django would have made for that
row: the same bytes (the multipart boundary aside, which Django draws at random), so the same
parsed headers and parts.
"""

import email
import re
import uuid
from email import policy

import pytest
from django.core.mail import message as django_message

from outbox import services
from outbox.models import Attempt, OutboundMessage
from outbox.services import render
from smtp_accounts.senders import RawMessage, get_sender

DATE = "Tue, 01 Dec 2026 09:30:00 -0000"
BOUNDARY = re.compile(rb"={15}\d+==")
LONG_NAME = "Ms. Alexandra Konstantinopoulou-Vandenberghe of the Regional Office"

CAMPAIGNS = {
    "text only": {"body_text": "Our news.\n" * 20},
    "text and HTML": {"body_text": "Our news.", "body_html": "<p>Our <b>news</b>.</p>"},
    "non-ASCII subject and body": {
        "subject": "Grüße aus Köln — Neuigkeiten für Sie", "body_text": "Schöne Grüße, Zoë",
        "body_html": "<p>Schöne Grüße</p>",
    },  # fmt: skip
    "long subject": {"subject": "A subject long enough to be folded " * 4},
    "headers and Reply-To": {
        "headers": {"List-Unsubscribe": "<https://crm.example.com/u/" + "x" * 90 + ">",
                    "X-Campaign": "spring"},
        "reply_to": ["Ops Team <ops@example.com>"],
    },  # fmt: skip
    "a named From": {"from_email": "Crm Newsletter <news@example.com>"},
}
RECIPIENTS = [
    ["reader@example.com"],
    ["Zoë Müller <zoe@example.com>"],
    [f"{LONG_NAME} <alexandra@example.com>"],
    ["ann@example.com", "Bob Smith <bob@example.com>", "carol.long-address@example.org"],
    ["jürgen@bücher.example"],
    ["x" * 60 + "@example.com"],  # To line just over 78 characters: folded or not, as Django
    ["x" * 58 + "@example.com"],
    ['"' + "a,b;" * 18 + '"@example.com'],  # no white space, but long: folded at ; and ,
]


@pytest.fixture
def fixed_date(monkeypatch):
    """The same Date header for Django and the renderer (one second for every message)."""
    monkeypatch.setattr(django_message, "formatdate", lambda localtime=False: DATE)
    monkeypatch.setattr(render, "formatdate", lambda localtime=False: DATE)


def rows(account, campaign):
    fields = {"subject": "Our news of the month", "body_text": "Our news.", **campaign}
    fields.setdefault("from_email", account.email)
    return [OutboundMessage(account=account, account_type="campaigns", to=to,
                            idempotency_key=uuid.uuid4().hex, **fields)
            for to in RECIPIENTS]  # fmt: skip


def the_django_way(account, row):
    return get_sender(account).render(services.message_as_email(row))


def same_bytes(raw):
    return BOUNDARY.sub(b"BOUNDARY", raw.data)


@pytest.mark.parametrize("campaign", CAMPAIGNS.values(), ids=CAMPAIGNS.keys())
def test_a_message_from_the_template_is_the_message_django_makes(
    campaign, fixed_date, smtp_account_for, smtp_server
):
    account = smtp_account_for(smtp_server, account_type="campaigns")
    renderer = render.Renderer(account)
    messages = rows(account, campaign)

    for row in messages:
        mine, django = renderer.render(row), the_django_way(account, row)
        assert isinstance(mine, RawMessage)
        assert same_bytes(mine) == same_bytes(django)
        assert (mine.envelope_from, mine.recipients, mine.message_id) == (
            django.envelope_from, django.recipients, django.message_id)  # fmt: skip
        parsed, expected = (email.message_from_bytes(m.data, policy=policy.default)
                            for m in (mine, django))  # fmt: skip
        assert [(k, str(v)) for k, v in parsed.items() if k != "Content-Type"] == [
            (k, str(v)) for k, v in expected.items() if k != "Content-Type"]  # fmt: skip
        assert [part.get_content() for part in parsed.walk() if not part.is_multipart()] == [
            part.get_content() for part in expected.walk() if not part.is_multipart()]  # fmt: skip
    assert len(renderer._templates) == 1  # the whole campaign came from one template


def test_each_message_keeps_its_own_recipient_and_message_id(smtp_account_for, smtp_server):
    account = smtp_account_for(smtp_server, account_type="campaigns")
    renderer = render.Renderer(account)
    messages = rows(account, CAMPAIGNS["non-ASCII subject and body"])

    def parse(raw):
        return email.message_from_bytes(raw.data, policy=policy.default)

    parsed = [parse(renderer.render(row)) for row in messages]
    to = [str(message["To"]) for message in parsed]
    assert to == [str(parse(the_django_way(account, row))["To"]) for row in messages]
    assert len(set(to)) == len(messages) and "Zoë Müller <zoe@example.com>" in to
    assert [message["Message-ID"] for message in parsed] == [
        services.message_as_email(row).extra_headers["Message-ID"] for row in messages]
    assert {message["Subject"] for message in parsed} == {"Grüße aus Köln — Neuigkeiten für Sie"}


def test_messages_with_their_own_content_are_rendered_one_by_one(
    fixed_date, smtp_account_for, smtp_server
):
    account = smtp_account_for(smtp_server, account_type="campaigns")
    renderer = render.Renderer(account)
    personal = [OutboundMessage(account=account, account_type="campaigns", from_email=account.email,
                                to=[f"reader{n}@example.com"], subject=f"Your invoice {n}",
                                body_text=f"Dear reader {n}", idempotency_key=f"key-{n}")
                for n in range(3)]  # fmt: skip
    own_headers = OutboundMessage(
        account=account, account_type="campaigns", from_email=account.email,
        to=["ann@example.com"], cc=["boss@example.com"], subject="Your invoice 0",
        body_text="Dear reader 0", idempotency_key="key-cc",
    )  # fmt: skip

    for row in [*personal, own_headers]:
        assert same_bytes(renderer.render(row)) == same_bytes(the_django_way(account, row))
    assert renderer.render(own_headers).recipients == ["ann@example.com", "boss@example.com"]
    assert len(renderer._templates) == 3  # one per content; the Cc'ed message has none


def test_a_campaign_batch_reaches_the_server_one_recipient_each(ready, smtp_server):
    account = ready("campaigns")
    campaign = CAMPAIGNS["non-ASCII subject and body"]
    content = {"subject": campaign["subject"], "body": campaign["body_text"],
               "html_body": campaign["body_html"]}  # fmt: skip
    sent = [services.send_email(account_type="campaigns",
                                to=[f"Réader {n} <reader{n}@example.com>"], **content)
            for n in range(5)]  # fmt: skip

    services.deliver_claimed(services.claim_batch(account.pk))

    received = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    assert sorted(received) == [f"reader{n}@example.com" for n in range(5)]
    for number, row in enumerate(sent):
        row.refresh_from_db()
        address = f"reader{number}@example.com"
        message = received[address]
        assert str(message["To"]) == row.to[0] == f"Réader {number} <{address}>"
        assert row.status == "sent" and row.provider_message_id == message["Message-ID"]
        assert message["Message-ID"] == services.message_as_email(row).extra_headers["Message-ID"]
        assert message["Subject"] == campaign["subject"]
        assert message.get_body(("html",)).get_content().strip() == campaign["body_html"]
        history = Attempt.objects.get(message=row)
        # The recipient as Django's sanitize_address() gives it to smtplib (name encoded).
        assert history.outcome == "sent" and history.recipients[0]["email"].endswith(f"<{address}>")
