"""The Django admin shows the outbox read-only (mail is queued by send_email, never by hand)
and the suppression list, which an admin may add to and remove from."""

from django.contrib import admin

from .models import Attempt, OutboundMessage, Suppression


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


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "reason", "created_at", "message")
    list_filter = ("reason",)
    list_select_related = ("message",)
    search_fields = ("email", "note")
    raw_id_fields = ("message",)  # a select of every message would load the whole outbox
    readonly_fields = ("created_at",)
