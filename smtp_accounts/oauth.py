"""Sign in with Google / Microsoft: the authorization-code flow with PKCE, and token refresh.

- `start_sign_in(account, session, redirect_uri)` -> the provider's authorization URL. The
  `state` it carries is kept in the admin's session with the account, the PKCE verifier and
  an expiry (settings.SMTP_ACCOUNTS_OAUTH_STATE_SECONDS); the callback may use it once.
- `finish_sign_in(session, params, redirect_uri)` -> the signed-in account, or SignInFailed
  whose `reason` says what to do. It stores nothing unless the code exchange succeeded.
- `access_token(account)` -> a live access token for AUTH XOAUTH2, refreshed first when it
  expires within SMTP_ACCOUNTS_OAUTH_REFRESH_MARGIN_SECONDS, one refresh at a time per account.

The HTTP is authlib's requests client. Tokens are kept only Fernet-encrypted on the account
row and never logged; only access_token() hands one out, to the SMTP sender.
"""

import base64
import binascii
import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import audit, crypto
from .models import AuthMethod, SmtpAccount, TestEmail
from .senders.base import ConfigurationError, TemporaryFailure

__all__ = [
    "SignInFailed", "access_token", "finish_sign_in", "forget_access_token", "offered_methods",
    "provider_for", "start_sign_in",
]

logger = logging.getLogger(__name__)

SESSION_KEY = "smtp_accounts_oauth"
MAX_PENDING = 5  # sign-ins started in one session and not finished (several tabs)
BAD_STATE = (
    "This sign-in link is not valid any more: it was already used, it is older than ten "
    "minutes, or it was started in another browser. Open the account and click Sign in again."
)


@dataclass(frozen=True)
class Provider:
    """One OAuth provider as this deployment configures it."""

    method: str
    label: str
    setting: str  # the prefix of its settings, named in error messages
    client_id: str
    client_secret: str
    auth_url: str
    token_url: str
    scope: str
    extra: dict = field(default_factory=dict)  # more authorization-URL parameters


def provider_for(method):
    """The Provider of AuthMethod `method` (its client id may be empty: not configured)."""
    if method == AuthMethod.GOOGLE:
        prefix = "SMTP_ACCOUNTS_GOOGLE"
        # offline + consent: Google hands out a refresh token only on a consent screen.
        label, scope, extra = "Google", "https://mail.google.com/", {
            "access_type": "offline", "prompt": "consent"}
    elif method == AuthMethod.MICROSOFT:
        prefix = "SMTP_ACCOUNTS_MICROSOFT"
        label, scope, extra = "Microsoft", "https://outlook.office.com/SMTP.Send offline_access", {}
    else:
        raise ValueError(f"{method!r} is not an OAuth sign-in")
    values = [getattr(settings, f"{prefix}_{name}") for name in
              ("CLIENT_ID", "CLIENT_SECRET", "AUTH_URL", "TOKEN_URL")]
    return Provider(method, label, prefix, *values, scope=scope, extra=extra)


def offered_methods():
    """The OAuth AuthMethod values whose client id is set on this deployment."""
    return [m for m in (AuthMethod.GOOGLE, AuthMethod.MICROSOFT) if provider_for(m).client_id]


class SignInFailed(Exception):
    """The sign-in did not finish; `reason` says why and what to do, `account` may be None."""

    def __init__(self, reason, account=None):
        super().__init__(reason)
        self.reason = reason
        self.account = account


def _client(provider, redirect_uri=None):
    # client_secret_post: client_id and client_secret go in the token request's body, as
    # both Google and Microsoft accept for a web application.
    return OAuth2Session(
        provider.client_id, provider.client_secret, scope=provider.scope,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 -- a method name
        code_challenge_method="S256",
    )


# --- the authorization-code flow ---------------------------------------------------------


def start_sign_in(account, session, redirect_uri):
    """Return the authorization URL that signs `account` in; remember its state in `session`.

    Raises SignInFailed when the account does not sign in with OAuth or its provider is not
    configured on this deployment.
    """
    provider = _configured(account)
    verifier = secrets.token_urlsafe(64)  # PKCE: 86 characters, within RFC 7636's 43..128
    url, state = _client(provider, redirect_uri).create_authorization_url(
        provider.auth_url, code_verifier=verifier, **provider.extra
    )
    pending = _pending(session)
    pending[state] = {
        "account": account.pk, "method": account.auth_method, "verifier": verifier,
        "expires": time.time() + settings.SMTP_ACCOUNTS_OAUTH_STATE_SECONDS,
    }
    newest = sorted(pending.items(), key=lambda item: item[1]["expires"])[-MAX_PENDING:]
    session[SESSION_KEY] = dict(newest)
    return url


def _configured(account):
    if not account.uses_oauth or account.is_external:
        raise SignInFailed(f"“{account}” signs in with a password; choose Google or Microsoft "
                           "as its Sign-in and save first.", account)
    provider = provider_for(account.auth_method)
    if not provider.client_id:
        raise SignInFailed(f"Sign in with {provider.label} is not set up on this CRM: ask "
                           f"the operator to set {provider.setting}_CLIENT_ID.", account)
    return provider


def _pending(session):
    """The session's unexpired sign-ins {state: entry}."""
    now = time.time()
    return {state: entry for state, entry in session.get(SESSION_KEY, {}).items()
            if entry.get("expires", 0) > now}


def finish_sign_in(session, params, redirect_uri):
    """Finish the sign-in the provider redirected back with (`params`: the callback's GET).

    Returns the signed-in SmtpAccount. Raises SignInFailed for a missing, wrong, expired or
    reused state, an `error=` from the provider, or a refused code exchange; nothing is
    stored then.
    """
    pending = _pending(session)
    entry = pending.pop(params.get("state") or "", None)
    session[SESSION_KEY] = pending  # usable once, whatever happens next
    if entry is None:
        raise SignInFailed(BAD_STATE)
    account = SmtpAccount.objects.filter(pk=entry["account"]).first()
    if account is None:
        raise SignInFailed("The account was deleted while you were signing in.")
    if account.auth_method != entry["method"]:
        raise SignInFailed(f"“{account}” changed its Sign-in meanwhile; click Sign in again.",
                           account)
    provider = _configured(account)
    if params.get("error"):
        raise SignInFailed(_refusal(provider, params), account)
    if not params.get("code"):
        raise SignInFailed(f"{provider.label} sent no sign-in code back; click Sign in again.",
                           account)
    token = _exchange(provider, redirect_uri, params["code"], entry["verifier"], account)
    _store_sign_in(account, token, provider)
    _signed_in(account)
    return account


def _refusal(provider, params):
    if params["error"] == "access_denied":
        return (f"The sign-in was cancelled at {provider.label} (or access was not granted), "
                f"so nothing changed. Click Sign in with {provider.label} and allow the CRM "
                "to send mail.")
    said = " ".join(params.get("error_description", "").split())[:200]
    return (f"{provider.label} refused the sign-in ({params['error']}"
            f"{': ' + said if said else ''}). Click Sign in again; if it repeats, ask the "
            f"operator to check the {provider.setting}_CLIENT_ID and the registered redirect URI.")


@sensitive_variables("code", "verifier")
def _exchange(provider, redirect_uri, code, verifier, account):
    try:
        return _client(provider, redirect_uri).fetch_token(
            provider.token_url, grant_type="authorization_code", code=code,
            code_verifier=verifier, timeout=settings.SMTP_ACCOUNTS_TIMEOUT,
        )
    except AuthlibBaseError as err:
        raise SignInFailed(
            f"{provider.label} did not accept the sign-in ({err.error}). Click Sign in again; "
            f"if it repeats, ask the operator to check {provider.setting}_CLIENT_SECRET and that "
            f"{redirect_uri} is a registered redirect URI.", account) from err
    except (requests.RequestException, ValueError) as err:
        raise SignInFailed(
            f"Could not reach {provider.label} to finish the sign-in ({type(err).__name__}). "
            "Try again in a minute.", account) from err


def _store_sign_in(account, token, provider):
    refresh = token.get("refresh_token")
    if not refresh:
        raise SignInFailed(
            f"{provider.label} gave no refresh token, so the CRM could not send later. Remove "
            "the CRM's access in your account's security settings, then sign in again.", account)
    identity = _identity(token) or account.username
    with transaction.atomic():
        row = _lock(account.pk)
        fields = {**_token_fields(token), "signed_in_as": identity, "last_error": "",
                  "last_error_at": None}
        if row.signed_in_as and row.signed_in_as.lower() != identity.lower():
            # Another mailbox signed in: the old test proved nothing about this one.
            fields["verified_at"] = None
            TestEmail.objects.filter(account_id=row.pk, status__in=[
                TestEmail.Status.QUEUED, TestEmail.Status.SENT,
            ]).update(status=TestEmail.Status.SUPERSEDED)
        SmtpAccount.objects.filter(pk=row.pk).update(**fields)
        audit.record_signed_in(row, identity, previous_identity=row.signed_in_as or None)
    account.refresh_from_db()


def _identity(token):
    """The address in the token answer's id_token, if it carries one; else "".

    It came straight from the token endpoint over TLS, which OpenID Connect (Core 3.1.3.7)
    accepts instead of checking the signature; it is only shown, never trusted for access.
    """
    try:
        payload = token["id_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error):
        return ""
    if not isinstance(claims, dict):
        return ""
    found = claims.get("email") or claims.get("preferred_username") or claims.get("upn") or ""
    return str(found)[:254]


def _signed_in(account):
    """An account was signed in (its audit entry was written with the tokens)."""
    logger.info("SMTP account %s (id %s) signed in with %s", account, account.pk,
                account.get_auth_method_display())


# --- access tokens -----------------------------------------------------------------------

# Threads of one process wait here before the database lock, so they do not queue on it.
_process_locks = defaultdict(threading.Lock)
_process_locks_guard = threading.Lock()


def access_token(account):
    """A live access token for `account` (refreshed first if it expires soon).

    Raises ConfigurationError when the account is not signed in, the provider refused the
    refresh (`invalid_grant`: "sign in again") or is misconfigured; TemporaryFailure when
    the provider could not be reached.
    """
    if not account.is_signed_in:
        raise ConfigurationError(_not_signed_in(account))
    if not _fresh(account):
        _refresh_locked(account)
    return _decrypt(account.oauth_access_token_encrypted)


def _refresh_locked(account):
    with _process_locks_guard:
        process_lock = _process_locks[account.pk]
    with process_lock:
        with transaction.atomic():
            row = _lock(account.pk)
            # Another worker may have refreshed while this one waited: use its token.
            error = None if _fresh(row) or not row.is_signed_in else _refresh(row)
        # Raised after the commit, so a refused grant's cleared tokens are written.
        for name in ("auth_method", *SmtpAccount.TOKEN_FIELDS, "oauth_access_token_expires_at",
                     "signed_in_as"):
            setattr(account, name, getattr(row, name))
    if error is not None:
        raise error
    if not account.is_signed_in:
        raise ConfigurationError(_not_signed_in(account))


def _lock(pk):
    """The account row, locked until the transaction ends, for every process."""
    rows = SmtpAccount.objects.filter(pk=pk)
    if connection.features.has_select_for_update:
        return rows.select_for_update().get()
    # SQLite has no row locks; a write takes its database-wide write lock until the commit.
    rows.update(oauth_access_token_expires_at=F("oauth_access_token_expires_at"))
    return rows.get()


def _fresh(account):
    expires = account.oauth_access_token_expires_at
    margin = timedelta(seconds=settings.SMTP_ACCOUNTS_OAUTH_REFRESH_MARGIN_SECONDS)
    return bool(account.oauth_access_token_encrypted and expires
                and expires - margin > timezone.now())


@sensitive_variables("refresh")
def _refresh(row):
    """Refresh `row`'s tokens in the database (the caller holds the lock). Returns None, or
    the ConfigurationError / TemporaryFailure to raise once the transaction is over."""
    provider = provider_for(row.auth_method)
    if not provider.client_id:
        return ConfigurationError(f"Sign in with {provider.label} is not set up any more: set "
                                  f"{provider.setting}_CLIENT_ID, or change the Sign-in of {row}.")
    refresh = _decrypt(row.oauth_refresh_token_encrypted)
    try:
        token = _client(provider).refresh_token(
            provider.token_url, refresh_token=refresh, timeout=settings.SMTP_ACCOUNTS_TIMEOUT)
    except AuthlibBaseError as err:
        if err.error != "invalid_grant":
            return ConfigurationError(
                f"{provider.label} refused to renew the sign-in of {row} ({err.error}): check "
                f"{provider.setting}_CLIENT_ID and {provider.setting}_CLIENT_SECRET.")
        row.clear_tokens()
        _save_tokens(row)
        return ConfigurationError(
            f"{provider.label} no longer accepts the sign-in of {row} (invalid_grant: access "
            f"was revoked, the password changed or the sign-in expired): sign in again with "
            f"{provider.label} on the account's page.")
    except (requests.RequestException, ValueError) as err:
        return TemporaryFailure(f"Could not reach {provider.label} to renew the sign-in of "
                                f"{row} ({type(err).__name__}); it will be tried again.")
    for name, value in _token_fields(token, keep_refresh=refresh).items():
        setattr(row, name, value)
    _save_tokens(row)
    return None


@sensitive_variables("token", "keep_refresh")
def _token_fields(token, keep_refresh=None):
    """The encrypted columns for a token answer (a refresh token rotated or kept)."""
    expires_at = token.get("expires_at") or (time.time() + int(token.get("expires_in", 3600)))
    return {
        "oauth_access_token_encrypted": crypto.encrypt(token["access_token"]),
        "oauth_access_token_expires_at": datetime.fromtimestamp(int(expires_at), tz=UTC),
        "oauth_refresh_token_encrypted": crypto.encrypt(token.get("refresh_token")
                                                        or keep_refresh),
    }


def _save_tokens(row):
    SmtpAccount.objects.filter(pk=row.pk).update(
        **{name: getattr(row, name) for name in
           (*SmtpAccount.TOKEN_FIELDS, "oauth_access_token_expires_at", "signed_in_as")})


def forget_access_token(account):
    """Drop the cached access token (the server refused it): the next use refreshes."""
    account.oauth_access_token_encrypted = ""
    account.oauth_access_token_expires_at = None
    SmtpAccount.objects.filter(pk=account.pk).update(
        oauth_access_token_encrypted="", oauth_access_token_expires_at=None)


def _not_signed_in(account):
    label = account.get_auth_method_display()
    return f"{account} is not signed in: open the account and click Sign in with {label}."


@sensitive_variables()
def _decrypt(token):
    try:
        return crypto.decrypt(token)
    except crypto.UndecryptableSecret as err:
        raise ConfigurationError(
            "The stored sign-in cannot be decrypted (its key is no longer in FERNET_KEYS): "
            "sign in again.") from err
