"""The local dev inbox page (placeholder; being written)."""

from django.views import View


class DevInboxView(View):
    pass
