"""The Mail Log, included by crm/urls.py at /settings/mail-log/."""

from django.urls import path

from . import views

app_name = "outbox"

urlpatterns = [
    path("", views.MailLogView.as_view(), name="list"),
    path("<int:pk>/", views.MessageDetailView.as_view(), name="detail"),
    path("<int:pk>/retry/", views.RetryView.as_view(), name="retry"),
    path("retry-failed/", views.RetryFailedView.as_view(), name="retry_failed"),
]
