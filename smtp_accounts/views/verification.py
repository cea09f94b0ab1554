"""Test → code → Confirm, as the pop-up's JSON endpoints and as plain pages without JS.

A request that prefers `application/json` (the pop-up's fetch) gets the state as JSON; any
other gets the no-JS page. Both go through services.request_test_email / confirm_test_email.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters

from .. import services
from ..models import SmtpAccount, TestEmail


class TestEmailForm(forms.Form):
    email = forms.EmailField(
        label="Email", max_length=254, help_text="The test email and its code go here."
    )


class CodeInput(forms.TextInput):
    """A code field that never renders a value: a typed code is not echoed back in HTML."""

    def format_value(self, value):
        return None


class ConfirmCodeForm(forms.Form):
    # Not required here: an empty code gets the service's own message, like any bad code.
    code = forms.CharField(
        label="Confirmation code",
        max_length=20,
        required=False,
        widget=CodeInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "placeholder": "123456",
                "required": True,
            }
        ),
    )


def wants_json(request):
    """True when the client asked for JSON first (the pop-up), not for a page."""
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def _time(value, fmt="H:i"):
    return date_format(timezone.localtime(value), fmt) if value else ""


def describe(test):
    """A sentence on where the test is, for the pop-up and the page ("" without a test)."""
    if test is None:
        return ""
    state = test_state_name(test)
    sentences = {
        "queued": f"Sending the test email to {test.recipient}…",
        "sent": f"Sent to {test.recipient} at {_time(test.sent_at)}. Enter the confirmation "
        f"code from that email; it is valid until {_time(test.expires_at)}.",
        "failed": f"Could not send the test email to {test.recipient}: {test.error}",
        "confirmed": f"Confirmed at {_time(test.confirmed_at)}: the account is verified.",
        "burned": "The code no longer works after 5 wrong tries. Send a new test.",
        "expired": "The code has expired. Send a new test.",
        "superseded": "This test was replaced by a newer test or by a change to the account. "
        "Send a new test.",
    }
    return sentences[state]


def test_state_name(test):
    """The test's status, with `expired` and `burned` told apart from a usable `sent`."""
    if test.status == TestEmail.Status.SENT:
        if test.attempts >= services.MAX_CODE_TRIES:
            return TestEmail.Status.BURNED.value
        if test.expires_at and test.expires_at <= timezone.now():
            return "expired"
    return test.status


def state_json(account, test):
    """The account's verification and its latest test as plain JSON types."""
    data = {
        "account": {
            "id": account.pk,
            "name": account.name,
            "verified": account.verified_at is not None,
            "verified_at": account.verified_at.isoformat() if account.verified_at else None,
            "verified_display": _time(account.verified_at, "M j, Y H:i"),
        },
        "test": None,
    }
    if test is not None:
        state = test_state_name(test)
        data["test"] = {
            "state": state,
            "recipient": test.recipient,
            "created_at": test.created_at.isoformat(),
            "requested_display": _time(test.created_at, "M j, H:i"),
            "sent_at": test.sent_at.isoformat() if test.sent_at else None,
            "error": test.error,
            "hint": services.failure_hint(test.error) if test.error else "",
            "awaiting_code": state == TestEmail.Status.SENT,
            "tries_left": services.MAX_CODE_TRIES - test.attempts if state == "sent" else 0,
            "message": describe(test),
        }
    return data


class VerificationMixin(PermissionRequiredMixin):
    """The account from the URL, and the page or JSON answer shared by both views."""

    permission_required = "smtp_accounts.change_smtpaccount"

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.wants_json = wants_json(request)

    def get_account(self):
        accounts = SmtpAccount.objects.defer("password_encrypted")
        return get_object_or_404(accounts, pk=self.kwargs["pk"])

    def answer(self, account, *, send_form=None, code_form=None, status=200, **extra):
        """JSON for the pop-up, else the no-JS page (a refusal is still HTTP 200 there)."""
        test = services.latest_test(account)
        if self.wants_json:
            return JsonResponse({**state_json(account, test), **extra}, status=status)
        context = {
            "account": account,
            "test": test,
            "state": state_json(account, test)["test"],
            "send_form": send_form or TestEmailForm(initial={"email": self.request.user.email}),
            "code_form": code_form or ConfirmCodeForm(),
        }
        return render(self.request, "smtp_accounts/testemail_form.html", context)


class TestEmailView(VerificationMixin, View):
    """GET: the latest test's state (JSON) or the no-JS page. POST `email`: send a test."""

    def get(self, request, pk):
        return self.answer(self.get_account())

    def post(self, request, pk):
        account = self.get_account()
        form = TestEmailForm(request.POST)
        if form.is_valid():
            try:
                services.request_test_email(
                    account, to=form.cleaned_data["email"], user=request.user
                )
            except services.TestEmailThrottled as err:
                form.add_error("email", str(err))
                return self.refuse(account, form, 429, wait_seconds=err.wait_seconds)
            except ValidationError as err:
                form.add_error("email", err)
            else:
                if not self.wants_json:  # a reload of the result page must not send again
                    return redirect("smtp_accounts:test", pk=account.pk)
                return self.answer(account, ok=True)
        return self.refuse(account, form, 400)

    def refuse(self, account, form, status, **extra):
        error = " ".join(form.errors.get("email", [])) or "Enter a valid email address."
        return self.answer(
            account, send_form=form, status=status, ok=False, error=error, **extra
        )


@method_decorator(sensitive_post_parameters("code"), name="dispatch")
class ConfirmCodeView(VerificationMixin, View):
    """POST `code`: confirm the latest test; on success the account is verified."""

    def get(self, request, pk):
        return redirect("smtp_accounts:test", pk=pk)

    def post(self, request, pk):
        account = self.get_account()
        form = ConfirmCodeForm(request.POST)
        try:
            form.is_valid()
            services.confirm_test_email(account, form.cleaned_data.get("code", ""))
        except services.CodeRejected as err:
            form.add_error("code", err.reason)
            return self.answer(
                account, code_form=form, status=400, ok=False, error=err.reason,
                tries_left=err.tries_left,
            )  # fmt: skip
        message = f"“{account.name}” is verified: its test email arrived and the code matched."
        if self.wants_json:
            return self.answer(account, ok=True, message=message)
        messages.success(request, message)
        return redirect("smtp_accounts:list")
