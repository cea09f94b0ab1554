"""The outbox's URLs, included at the site's root by crm/urls.py: the Mail Log and
Suppressions under System Settings, and Mailgun's tracking webhook (its address is Mailgun's
configuration, so it stays where anymail serves it)."""

from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.urls import path

from . import views

app_name = "outbox"

urlpatterns = [
    path("settings/mail-log/", views.MailLogView.as_view(), name="list"),
    path("settings/mail-log/<int:pk>/", views.MessageDetailView.as_view(), name="detail"),
    path("settings/mail-log/<int:pk>/retry/", views.RetryView.as_view(), name="retry"),
    path("settings/mail-log/retry-failed/", views.RetryFailedView.as_view(),
         name="retry_failed"),
    path("settings/suppressions/", views.SuppressionListView.as_view(), name="suppressions"),
    path("settings/suppressions/<int:pk>/delete/", views.SuppressionDeleteView.as_view(),
         name="suppression_delete"),
    path("anymail/mailgun/tracking/", MailgunTrackingWebhookView.as_view(),
         name="mailgun_tracking_webhook"),
]  # fmt: skip
