"""The Django admin lists accounts too, with the same write-only password as the pages."""

from django.contrib import admin
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from . import services
from .forms import SmtpAccountForm
from .models import SmtpAccount, TestEmail


@admin.register(SmtpAccount)
class SmtpAccountAdmin(admin.ModelAdmin):
    form = SmtpAccountForm
    list_display = (
        "name", "account_type", "provider", "server_label", "email", "priority", "is_active",
        "verified_at", "paused_until", "updated_at",
    )
    list_filter = ("account_type", "provider", "is_active")
    search_fields = ("name", "email", "host", "domain")
    readonly_fields = (
        "verified_at", "paused_until", "pause_reason", "last_error", "last_error_at",
        "updated_at", "updated_by",
    )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class AdminForm(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=request.user, **kw)

        return AdminForm

    def get_fields(self, request, obj=None):
        return [*SmtpAccountForm.base_fields, *self.readonly_fields]

    @method_decorator(sensitive_post_parameters("password"))
    def changeform_view(self, request, *args, **kwargs):
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        form.save()

    def delete_model(self, request, obj):
        services.delete_account(obj)


@admin.register(TestEmail)
class TestEmailAdmin(admin.ModelAdmin):
    list_display = ("account", "recipient", "status", "attempts", "created_at")
    list_filter = ("status",)
    exclude = ("code_hash",)

    def has_add_permission(self, request):
        return False  # a test is requested with the Test button
    readonly_fields = (
        "account", "recipient", "requested_by", "status", "error", "attempts", "expires_at",
        "sent_at", "confirmed_at",
    )
