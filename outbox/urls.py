"""The outbox's URLs: Mailgun's tracking webhook (its address is Mailgun's configuration,
so it stays where anymail serves it)."""

from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.urls import path

urlpatterns = [
    path("anymail/mailgun/tracking/", MailgunTrackingWebhookView.as_view(),
         name="mailgun_tracking_webhook"),  # fmt: skip
]
