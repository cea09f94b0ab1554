"""The Mail Log pages: the list, one message, Retry and Retry failed; and the Suppressions
page with Remove. Thin views over services.log (reads), services.retry and
services.suppressions."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import DeleteView, DetailView, FormView, ListView, View

from smtp_accounts.views.paging import LastPageMixin

from .forms import MailLogFilterForm, RetryFailedForm, SuppressionSearchForm
from .models import Suppression
from .services import log, retry, suppressions

VIEW = "outbox.view_outboundmessage"
CHANGE = "outbox.change_outboundmessage"
VIEW_SUPPRESSION = "outbox.view_suppression"
DELETE_SUPPRESSION = "outbox.delete_suppression"


class MailLogView(PermissionRequiredMixin, LastPageMixin, ListView):
    """Newest first, 50 a page; the filters stay in the paging links."""

    permission_required = VIEW
    paginate_by = 50
    paginator_class = log.CappedPaginator
    template_name = "outbox/outboundmessage_list.html"

    def get_queryset(self):
        self.filter_form = MailLogFilterForm(self.request.GET)
        return log.filter_messages(**self.filter_form.filters())

    def get_context_data(self, **kwargs):
        params = self.request.GET.copy()
        params.pop("page", None)
        filters = self.filter_form.filters()
        return super().get_context_data(
            filter_form=self.filter_form,
            filtered=bool(filters),
            query_string=params.urlencode(),
            retry_account=filters.get("account"),
            **kwargs,
        )


class MessageDetailView(PermissionRequiredMixin, DetailView):
    """One message: who it was for, its Message-ID and its history. Never the body."""

    permission_required = VIEW
    template_name = "outbox/outboundmessage_detail.html"

    def get_object(self, queryset=None):
        try:
            return log.get_message(self.kwargs["pk"])
        except log.MessageNotFound as err:
            raise Http404(str(err)) from err

    def get_context_data(self, **kwargs):
        message = self.object
        return super().get_context_data(
            message_id=retry.message_id_of(message),
            timeline=log.timeline(message),
            **kwargs,
        )


class RetryView(PermissionRequiredMixin, View):
    """POST: a failed message is queued again now; back to its page with the outcome."""

    permission_required = CHANGE
    http_method_names = ["post"]

    def post(self, request, pk):
        try:
            message = log.get_message(pk)
        except log.MessageNotFound as err:
            raise Http404(str(err)) from err
        if retry.retry_message(message):
            messages.success(request, f"Message {message.pk} is queued again.")
        else:
            messages.warning(
                request, f"Message {message.pk} is {message.get_status_display().lower()}, "
                "not failed, so it was not queued again.",
            )  # fmt: skip
        return redirect("outbox:detail", pk=message.pk)


class RetryFailedView(PermissionRequiredMixin, FormView):
    """GET says how many failed messages would be queued again; POST queues them."""

    permission_required = CHANGE
    form_class = RetryFailedForm
    template_name = "outbox/outboundmessage_confirm_retry.html"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        if self.request.method == "GET":
            kwargs["data"] = self.request.GET  # ?account=ID picks the account to confirm
        return kwargs

    def get(self, request, *args, **kwargs):
        form = self.get_form()
        if not form.is_valid():
            raise Http404("No SMTP account has that id.")
        account = form.cleaned_data["account"]
        return self.render_to_response(self.get_context_data(
            form=form, account=account, count=retry.count_failed(account),
        ))  # fmt: skip

    def form_valid(self, form):
        account = form.cleaned_data["account"]
        count = retry.retry_failed(account)
        whose = f" of “{account.name}”" if account else ""
        noun = "message" if count == 1 else "messages"
        messages.success(self.request, f"{count} failed {noun}{whose} queued again.")
        query = f"?account={account.pk}" if account else ""
        return redirect(reverse("outbox:list") + query)

    def form_invalid(self, form):
        raise Http404("No SMTP account has that id.")


class SuppressionListView(PermissionRequiredMixin, LastPageMixin, ListView):
    """The addresses the CRM no longer sends to, newest first, 50 a page; `q` searches."""

    permission_required = VIEW_SUPPRESSION
    paginate_by = 50
    template_name = "outbox/suppression_list.html"

    def get_queryset(self):
        self.search_form = SuppressionSearchForm(self.request.GET)
        return suppressions.filter_suppressions(self.search_form.query())

    def get_context_data(self, **kwargs):
        query = self.search_form.query()
        return super().get_context_data(
            search_form=self.search_form, query=query,
            query_string=urlencode({"q": query}) if query else "", **kwargs,
        )  # fmt: skip


class SuppressionDeleteView(PermissionRequiredMixin, DeleteView):
    """GET asks first; POST removes the address from the list (mail goes to it again)."""

    permission_required = DELETE_SUPPRESSION
    model = Suppression
    template_name = "outbox/suppression_confirm_delete.html"

    def get_success_url(self):
        return reverse("outbox:suppressions")

    def form_valid(self, form):
        email = self.object.email
        response = super().form_valid(form)
        messages.success(self.request, f"{email} is off the suppression list: the CRM sends "
                                       "to it again.")  # fmt: skip
        return response
