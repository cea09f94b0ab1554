"""List, create, edit and delete accounts: thin generic views over the form and services."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import CreateView, DeleteView, ListView, UpdateView

from .. import services
from ..forms import SmtpAccountForm
from ..models import AccountState, AccountType, Provider, SmtpAccount, TestEmail, state_filter
from .history import history_page
from .paging import LastPageMixin

# ?sort= values → ordering; the name breaks ties so pages never overlap.
SORTS = {
    "name": ("name", "pk"), "-name": ("-name", "-pk"),
    "updated": ("updated_at", "name"), "-updated": ("-updated_at", "name"),
}
FILTERS = ("q", "type", "provider", "active", "state")


class AccountListView(PermissionRequiredMixin, LastPageMixin, ListView):
    """The accounts table with search, filters, sortable columns and pagination."""

    permission_required = "smtp_accounts.view_smtpaccount"
    paginate_by = 25
    paginator_class = Paginator

    def get_queryset(self):
        accounts = (
            SmtpAccount.objects.select_related("updated_by")
            .defer("password_encrypted")
            .annotate(**latest_test_fields(), **mail_last_day_fields())
        )
        params = self.request.GET
        # PostgreSQL refuses NUL in text; nobody searches for one.
        if q := params.get("q", "").replace("\x00", "").strip():
            accounts = accounts.filter(
                Q(name__icontains=q) | Q(email__icontains=q) | Q(host__icontains=q)
                | Q(domain__icontains=q)
            )
        if params.get("type") in AccountType.values:
            accounts = accounts.filter(account_type=params["type"])
        if params.get("provider") in Provider.values:
            accounts = accounts.filter(provider=params["provider"])
        if params.get("active") in ("yes", "no"):
            accounts = accounts.filter(is_active=params["active"] == "yes")
        if params.get("state") in AccountState.values:
            accounts = accounts.filter(state_filter(params["state"]))
        return accounts.order_by(*SORTS.get(params.get("sort"), SORTS["name"]))

    def get_context_data(self, **kwargs):
        params = self.request.GET.copy()
        params.pop("page", None)
        unsorted = params.copy()
        sort = unsorted.pop("sort", ["name"])[-1]
        return super().get_context_data(
            filters=params,
            filtered=any(params.get(k) for k in FILTERS),
            query_string=params.urlencode(),
            unsorted_query=unsorted.urlencode(),
            sort=sort if sort in SORTS else "name",
            states=AccountState.choices,
            sending_ids=services.sending_account_ids(),
            mailgun_is_configured=services.mailgun_is_configured(),
            now=timezone.now(),
            account_types=AccountType.choices,
            providers=Provider.choices,
            **kwargs,
        )


def latest_test_fields():
    """Annotations with each account's last test (status, when, recipient, error), so the
    list shows it without a query per row."""
    latest = TestEmail.objects.filter(account=OuterRef("pk")).order_by("-created_at", "-pk")
    return {
        f"last_test_{name}": Subquery(latest.values(name)[:1])
        for name in ("status", "created_at", "recipient", "error", "expires_at")
    }


def mail_last_day_fields():
    """Annotations `mail_sent_24h` and `mail_failed_24h`: each account's messages of the last
    24 hours by status, for the list's links into the Mail Log.

    Correlated subqueries run only for the rows on the page, each an index lookup, so the
    page stays one query whatever the number of accounts or messages. The message model is
    reached through the reverse relation `messages`: smtp_accounts never imports outbox.
    """
    messages = SmtpAccount._meta.get_field("messages").related_model.objects
    since = timezone.now() - timedelta(hours=24)
    return {
        f"mail_{status}_24h": Coalesce(Subquery(
            messages.filter(account=OuterRef("pk"), status=status, created_at__gte=since)
            .order_by().values("account").annotate(n=Count("pk")).values("n")[:1],
            output_field=IntegerField(),
        ), 0)
        for status in ("sent", "failed")
    }  # fmt: skip


class AccountFormMixin:
    model = SmtpAccount
    form_class = SmtpAccountForm
    success_url = reverse_lazy("smtp_accounts:list")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def form_valid(self, form):
        try:
            response = super().form_valid(form)
        except ValidationError as err:  # lost a race for the name: the form comes back
            form.add_error(None, err)
            return self.form_invalid(form)
        messages.success(self.request, self.success_message.format(name=self.object.name))
        return response


# Error reports (mail_admins, debug pages) must not carry the typed password.
@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class AccountCreateView(PermissionRequiredMixin, AccountFormMixin, CreateView):
    """New account; `?provider=external|internal` preselects the provider."""

    permission_required = "smtp_accounts.add_smtpaccount"
    success_message = "SMTP account “{name}” was created. Click Test to verify it."

    def get_initial(self):
        provider = self.request.GET.get("provider")
        return {"provider": provider if provider in Provider.values else Provider.INTERNAL}


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class AccountUpdateView(PermissionRequiredMixin, AccountFormMixin, UpdateView):
    """Edit an account."""

    permission_required = "smtp_accounts.change_smtpaccount"
    success_message = "SMTP account “{name}” was saved."

    def get_context_data(self, **kwargs):
        history = history_page(self.request, services.account_history(self.object))
        return super().get_context_data(history=history, **kwargs)

    def form_valid(self, form):
        was_verified = form.instance.verified_at is not None
        response = super().form_valid(form)
        if was_verified and not self.object.is_verified:
            messages.warning(
                self.request,
                "How the account connects changed, so it must be tested again before it sends.",
            )
        return response


class AccountDeleteView(PermissionRequiredMixin, DeleteView):
    """GET asks for confirmation; POST deletes."""

    model = SmtpAccount
    permission_required = "smtp_accounts.delete_smtpaccount"
    success_url = reverse_lazy("smtp_accounts:list")

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            next_sender=services.sender_after_delete(self.object), **kwargs
        )

    def form_valid(self, form):
        name = self.object.name
        services.delete_account(self.object)
        messages.success(self.request, f"SMTP account “{name}” was deleted.")
        return redirect(self.success_url)
