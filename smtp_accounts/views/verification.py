"""Test → code → Confirm (placeholder; being written)."""

from django.views import View


class TestEmailView(View):
    pass


class ConfirmCodeView(View):
    pass
