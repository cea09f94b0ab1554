"""Mailgun's tracking webhooks, received through django-anymail.

anymail's view (routed in outbox/urls.py at `/anymail/mailgun/tracking/`) checks Mailgun's
signature (an HMAC of timestamp and token with MAILGUN_WEBHOOK_SIGNING_KEY) before it sends
its `tracking` signal; a bad signature gets 400 and reaches nothing here. The receiver hands
the event to services/events.py: a bounce fails the message, every event joins its history,
and an event that beat its message's save waits for it.
"""

import logging

from anymail.signals import tracking
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver

from .services import events

logger = logging.getLogger(__name__)
DETAIL_LENGTH = 500  # an MTA's answer can run long; the start says what happened


@receiver(tracking, dispatch_uid="outbox.webhooks.record_mailgun_event")
def record_mailgun_event(sender, event, esp_name, **kwargs):
    """Record a Mailgun tracking event on the outbox message it is about.

    Raises ImproperlyConfigured (the webhook answers 500 and nothing changes) when
    MAILGUN_WEBHOOK_SIGNING_KEY is empty: anymail then checks signatures against an empty
    key, and anyone can sign with that.
    """
    if esp_name != "Mailgun":
        return
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY:
        raise ImproperlyConfigured(
            "A Mailgun webhook was refused: MAILGUN_WEBHOOK_SIGNING_KEY is not set, so its "
            "signature proves nothing. Set it to the HTTP webhook signing key from Mailgun's "
            "control panel (API Security)."
        )
    if event.message_id:
        events.record_event(event.message_id, event.event_type,
                            recipient=event.recipient or "", detail=_detail(event))  # fmt: skip


def _detail(event):
    """Mailgun's explanation: the MTA's answer and Mailgun's description, whichever exist."""
    parts = [event.mta_response, event.description]
    said = [part.strip() for part in parts if part and part.strip()]
    detail = " — ".join(dict.fromkeys(said)) or "Mailgun gave no reason."
    return detail[:DETAIL_LENGTH]
