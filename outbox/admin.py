"""The Django admin shows the outbox read-only: mail is queued by send_email, never by hand."""

from django.contrib import admin

from .models import Attempt, OutboundMessage


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = ("at", "account_name", "outcome", "code", "reason", "recipients")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ("subject", "account", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "account_type")
    list_select_related = ("account",)  # the Account column: one query for the page
    search_fields = ("subject", "provider_message_id")
    exclude = ("body_text", "body_html")
    inlines = (AttemptInline,)
    readonly_fields = [
        f.name for f in OutboundMessage._meta.fields if f.name not in ("body_text", "body_html")
    ]

    def has_add_permission(self, request):
        return False  # mail is queued by send_email, never by hand
