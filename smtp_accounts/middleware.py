"""Web requests name their actor for the audit trail: the logged-in user and the client IP."""

from . import audit


class AuditActorMiddleware:
    """Entries written while a signed-in user's request runs (the pages, Django's admin)
    name that user and REMOTE_ADDR. Place it after AuthenticationMiddleware.

    REMOTE_ADDR, not X-Forwarded-For: a client can write that header itself. Behind a proxy,
    have the proxy (or gunicorn's --forwarded-allow-ips) set REMOTE_ADDR.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        with audit.acting_as(user.get_username(), ip=request.META.get("REMOTE_ADDR") or None):
            return self.get_response(request)
