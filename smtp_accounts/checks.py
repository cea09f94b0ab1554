"""System checks (`manage.py check`) for the settings and data the accounts depend on.

Registered in SmtpAccountsConfig.ready(). The settings checks always run; the data check only
runs for the databases Django names (`manage.py check --database default`, `migrate`), as
Django's own database checks do, so `check` and `runserver` never need a database.
"""

import ssl

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning
from django.db import DatabaseError, connections, router

FERNET_HINT = (
    "Set FERNET_KEYS to a comma-separated list of keys made with `python -c 'from "
    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
    "(the first key encrypts, every key decrypts)."
)


def check_fernet_keys(app_configs=None, **kwargs):
    """E001: FERNET_KEYS must be a non-empty list of valid Fernet keys."""
    keys = getattr(settings, "FERNET_KEYS", None)
    if isinstance(keys, str) or not keys:
        return [Error("FERNET_KEYS must be a non-empty list of Fernet keys.",
                      hint=FERNET_HINT, id="smtp_accounts.E001")]
    errors = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(Error(
                f"FERNET_KEYS key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes).",
                hint=FERNET_HINT, id="smtp_accounts.E001",
            ))
    return errors


def check_ca_file(app_configs=None, **kwargs):
    """E002: SMTP_ACCOUNTS_CA_FILE, when set, must be a readable PEM bundle."""
    path = getattr(settings, "SMTP_ACCOUNTS_CA_FILE", "")
    if not path:
        return []
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as err:
        return [Error(
            f"SMTP_ACCOUNTS_CA_FILE {path} cannot be loaded: {err}.",
            hint="Point SMTP_ACCOUNTS_CA_FILE at a readable PEM file of CA certificates, or "
                 "leave it empty to trust only the system's CAs.",
            id="smtp_accounts.E002",
        )]
    return []


# Settings external accounts need: (setting, check id, what goes wrong without it, hint).
MAILGUN_SETTINGS = [
    (
        "MAILGUN_API_KEY", "smtp_accounts.W001", "so they cannot send",
        "Set MAILGUN_API_KEY to the deployment's Mailgun API key (and MAILGUN_API_URL to "
        "https://api.eu.mailgun.net/v3 for an EU account).",
    ),
    (
        "MAILGUN_WEBHOOK_SIGNING_KEY", "smtp_accounts.W002",
        "so Mailgun's bounce webhooks are refused and bounced mail stays 'sent'",
        "Set MAILGUN_WEBHOOK_SIGNING_KEY to the HTTP webhook signing key on Mailgun's API "
        "Security page (not the API key).",
    ),
]


def check_mailgun_settings(app_configs=None, databases=None, **kwargs):
    """W001/W002: external (Mailgun) accounts exist but a Mailgun setting they need is empty.

    Looks at the data only in the `databases` Django asks about, and says nothing when one is
    unreachable or not migrated yet (the table is missing before `migrate` creates it).
    """
    missing = [entry for entry in MAILGUN_SETTINGS if not getattr(settings, entry[0], "")]
    if not missing or not databases:
        return []
    if app_configs is not None and not any(c.name == "smtp_accounts" for c in app_configs):
        return []
    warnings = []
    for alias in databases:
        count = _external_accounts(alias)
        warnings += [
            Warning(
                f"{count} external (Mailgun) account(s) exist in the '{alias}' database but "
                f"{name} is empty, {consequence}.",
                hint=hint,
                id=check_id,
            )
            for name, check_id, consequence, hint in missing
            if count
        ]
    return warnings


def _external_accounts(alias):
    """How many external accounts database `alias` holds (0 if it cannot say)."""
    from .models import Provider, SmtpAccount

    if not router.allow_migrate_model(alias, SmtpAccount):
        return 0
    try:
        if SmtpAccount._meta.db_table not in connections[alias].introspection.table_names():
            return 0
        return SmtpAccount.objects.using(alias).filter(provider=Provider.EXTERNAL).count()
    except DatabaseError:
        return 0
