"""The audit trail on the pages: an account's History section, and the Deleted accounts."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.views.generic import DetailView, ListView

from .. import services
from ..models import AccountEvent
from .paging import LastPageMixin

HISTORY_PER_PAGE = 20
Action = AccountEvent.Action
# The badge each kind of entry wears (app.css's badge-*).
_TONES = {
    Action.CREATED: "ok", Action.TEST_CONFIRMED: "ok", Action.SIGNED_IN: "ok",
    Action.RESUMED: "ok", Action.DELETED: "error", Action.TEST_FAILED: "error",
    Action.PAUSED: "warn",
}


def history_page(request, events):
    """The page of `events` that `?history_page=` asks for (HISTORY_PER_PAGE a page; a bad
    number gives the first or last page), each entry with `rows` and `tone` for the page."""
    page = Paginator(events, HISTORY_PER_PAGE).get_page(request.GET.get("history_page"))
    for event in page:
        event.rows = services.describe_changes(event)
        event.tone = _TONES.get(event.action, "muted")
    return page


class DeletedAccountListView(PermissionRequiredMixin, LastPageMixin, ListView):
    """Deleted accounts, newest first, each leading to the history it left."""

    permission_required = "smtp_accounts.view_smtpaccount"
    template_name = "smtp_accounts/deleted_accounts.html"
    paginate_by = 25

    def get_queryset(self):
        return services.deleted_accounts()


class DeletedAccountHistoryView(PermissionRequiredMixin, DetailView):
    """The history of a deleted account, found by its `deleted` entry, read by its name."""

    permission_required = "smtp_accounts.view_smtpaccount"
    template_name = "smtp_accounts/deleted_account_history.html"
    context_object_name = "deletion"

    def get_queryset(self):
        return services.deleted_accounts()

    def get_context_data(self, **kwargs):
        events = services.deleted_account_history(self.object.account_name)
        return super().get_context_data(history=history_page(self.request, events), **kwargs)
