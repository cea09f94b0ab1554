"""Check connection: the diagnostics of `smtp_accounts check`, from the edit page."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from .. import services
from ..models import SmtpAccount


class CheckConnectionView(PermissionRequiredMixin, View):
    """POST: run the connection check (DNS, TCP, TLS, login, or Mailgun's API) and show each
    step with its time. Sends nothing. GET goes back to the edit page."""

    permission_required = "smtp_accounts.change_smtpaccount"

    def get(self, request, pk):
        return redirect("smtp_accounts:update", pk=pk)

    def post(self, request, pk):
        account = get_object_or_404(SmtpAccount, pk=pk)
        result = services.check_account(account)
        return render(request, "smtp_accounts/check_result.html", {
            "account": account,
            "result": result,
            "steps": [
                {"name": step.name, "ok": step.ok, "detail": step.detail,
                 "ms": round(step.seconds * 1000, 1)}
                for step in result.steps
            ],
        })
