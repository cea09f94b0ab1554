"""The Django admin lists accounts too, with the same write-only password as the pages."""

from django import forms
from django.contrib import admin
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from . import services
from .forms import SmtpAccountForm
from .models import AccountEvent, SmtpAccount, TestEmail


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
        "verified_at", "signed_in_as", "paused_until", "pause_reason", "last_error",
        "last_error_at", "bounce_checked_at", "bounce_error", "updated_at", "updated_by",
    )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and not self.has_change_permission(request, obj):
            # View only: the admin shows every field read-only and builds a form without
            # them; SmtpAccountForm needs its fields, and there is nothing to validate.
            return super().get_form(request, obj, change=change, form=forms.ModelForm, **kwargs)
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class AdminForm(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=request.user, **kw)

        return AdminForm

    def get_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only: the model's fields, and whether a password is stored, never its value.
            return [*SmtpAccount.EDITABLE_FIELDS, "password_status", *self.readonly_fields]
        return [*SmtpAccountForm.base_fields, *self.readonly_fields]

    @admin.display(description="Password")
    def password_status(self, obj):
        return "stored (never shown)" if obj.has_password else "none"

    @method_decorator(sensitive_post_parameters("password", "bounce_password"))
    def changeform_view(self, request, *args, **kwargs):
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        form.save()

    def delete_model(self, request, obj):
        services.delete_account(obj)

    def delete_queryset(self, request, queryset):
        # "Delete selected" would delete in bulk, past the service and its audit entries.
        for account in queryset:
            services.delete_account(account)


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


@admin.register(AccountEvent)
class AccountEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: entries are written by the services, never by hand."""

    list_display = ("at", "account_name", "action", "actor", "actor_ip")
    list_filter = ("action",)
    search_fields = ("account_name", "actor")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
