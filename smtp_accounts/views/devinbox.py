"""The Dev inbox page: what the local dev inbox received. Exists only when DEBUG is true."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404
from django.shortcuts import redirect
from django.views.generic import TemplateView

from .. import devinbox


class DevInboxView(PermissionRequiredMixin, TemplateView):
    """GET: the newest messages, newest first. POST: empty the inbox."""

    permission_required = "smtp_accounts.view_smtpaccount"
    template_name = "smtp_accounts/devinbox.html"

    def dispatch(self, request, *args, **kwargs):
        # Checked before login: without DEBUG the page does not exist, for anyone.
        if not settings.DEBUG:
            raise Http404("The dev inbox exists only when DJANGO_DEBUG is true.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            inbox_messages=devinbox.read_messages(),
            inbox_host=devinbox.HOST,
            inbox_port=settings.SMTP_ACCOUNTS_DEV_INBOX_PORT,
            inbox_running=devinbox.is_listening(),
            **kwargs,
        )

    def post(self, request):
        devinbox.clear_inbox()
        messages.success(request, "The dev inbox is empty.")
        return redirect("smtp_accounts:dev_inbox")
