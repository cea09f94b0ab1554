"""Sign in with Google / Microsoft: start (POST from the account's page) and the callback.

Thin over smtp_accounts.oauth: a refused or broken sign-in is a normal page in the CRM's
layout that says what to do (like Django's PasswordResetConfirmView), never a 500.
"""

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from .. import oauth
from ..models import SmtpAccount


def callback_url(request):
    """This site's absolute redirect URI (the one registered with the providers)."""
    return request.build_absolute_uri(reverse("smtp_accounts:oauth_callback"))


class SignInStartView(PermissionRequiredMixin, View):
    """POST: answer 302 to the provider's authorization URL for the account."""

    permission_required = "smtp_accounts.change_smtpaccount"

    def post(self, request, pk):
        account = get_object_or_404(SmtpAccount, pk=pk)
        try:
            return redirect(oauth.start_sign_in(account, request.session, callback_url(request)))
        except oauth.SignInFailed as failure:
            messages.error(request, failure.reason)
            return redirect("smtp_accounts:update", pk=account.pk)


class SignInCallbackView(PermissionRequiredMixin, View):
    """GET: the provider's redirect back; on success, to the list showing *Signed in*."""

    permission_required = "smtp_accounts.change_smtpaccount"

    def get(self, request):
        try:
            account = oauth.finish_sign_in(request.session, request.GET, callback_url(request))
        except oauth.SignInFailed as failure:
            context = {"reason": failure.reason, "account": failure.account}
            return render(request, "smtp_accounts/oauth_failed.html", context)
        messages.success(request, f"“{account.name}” is signed in as {account.signed_in_as}. "
                                  "Click Test to verify it.")
        return redirect("smtp_accounts:list")
