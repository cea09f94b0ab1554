"""Mailgun's tracking webhooks: a message Mailgun could not deliver becomes failed.

django-anymail serves the webhook (`/anymail/mailgun/tracking/`, routed in crm/urls.py) and
checks Mailgun's signature (an HMAC of timestamp and token with MAILGUN_WEBHOOK_SIGNING_KEY)
before it sends its `tracking` signal; a bad signature gets 400 and reaches nothing here.
The outbox counts a message as sent once Mailgun accepted it; when Mailgun later reports a
permanent bounce or a refusal, the row turns failed with Mailgun's reason. Other events
(delivered, a temporary failure Mailgun retries itself, opens, clicks) change nothing.
"""

import logging

from anymail.signals import EventType, tracking
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from django.utils import timezone

from .models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status

# Anymail's names for Mailgun's "failed" (permanent), legacy "bounced", "rejected" and
# legacy "dropped" events. A temporary "failed" arrives as DEFERRED: Mailgun retries it.
UNDELIVERED = {
    EventType.BOUNCED: "Mailgun reported that the message to {recipient} bounced: {detail}",
    EventType.REJECTED: "Mailgun refused to send the message to {recipient}: {detail}",
}
ADVICE = " Check the address before sending to it again."
DETAIL_LENGTH = 500  # an MTA's answer can run long; the start says what happened


@receiver(tracking, dispatch_uid="smtp_accounts.webhooks.record_mailgun_event")
def record_mailgun_event(sender, event, esp_name, **kwargs):
    """Record a Mailgun tracking event on the outbox message it is about.

    A bounce or refusal fails the message, if it is still recorded as sent (a repeated
    event changes nothing). Raises ImproperlyConfigured (the webhook answers 500 and nothing
    changes) when MAILGUN_WEBHOOK_SIGNING_KEY is empty: anymail then checks signatures
    against an empty key, and anyone can sign with that.
    """
    if esp_name != "Mailgun":
        return
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY:
        raise ImproperlyConfigured(
            "A Mailgun webhook was refused: MAILGUN_WEBHOOK_SIGNING_KEY is not set, so its "
            "signature proves nothing. Set it to the HTTP webhook signing key from Mailgun's "
            "control panel (API Security)."
        )
    if event.event_type == EventType.DELIVERED:
        logger.info("Mailgun delivered message %s", event.message_id)
    elif event.event_type in UNDELIVERED and event.message_id:
        _fail_sent_message(event)


def _fail_sent_message(event):
    """Turn the sent outbox row with the event's message id failed, with Mailgun's reason."""
    reason = UNDELIVERED[event.event_type].format(
        recipient=event.recipient or "its recipient", detail=_detail(event)
    )
    failed = OutboundMessage.objects.filter(
        provider_message_id=event.message_id, status=Status.SENT
    ).update(
        status=Status.FAILED, error_kind=OutboundMessage.ErrorKind.PERMANENT,
        last_error=reason + ADVICE, updated_at=timezone.now(),
    )  # fmt: skip
    logger.warning("Mailgun %s message %s: %d outbox message(s) marked failed",
                   event.event_type, event.message_id, failed)  # fmt: skip


def _detail(event):
    """Mailgun's explanation: the MTA's answer and Mailgun's description, whichever exist."""
    parts = [event.mta_response, event.description]
    said = [part.strip() for part in parts if part and part.strip()]
    detail = " — ".join(dict.fromkeys(said)) or "Mailgun gave no reason."
    return detail[:DETAIL_LENGTH]
