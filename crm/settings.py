"""Settings for the CRM project.

This is the only module that reads the environment (see `.env.example` for every variable).
App code reads `django.conf.settings`.
"""

import base64
import hashlib
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A git-ignored `.env` (written by `make run`) may hold local values; real env vars win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -----------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "anymail",
    "smtp_accounts",
    "outbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "smtp_accounts.middleware.AuditActorMiddleware",  # who changed an account, and from where
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.views.menu",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/settings/smtp-accounts/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation and static files ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names in production; plain storage while debugging needs no collectstatic.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Load balancers and orchestrators probe /healthz over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
SECURE_HSTS_SECONDS = 31536000 if SECURE_SSL_REDIRECT else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL_REDIRECT
SECURE_HSTS_PRELOAD = SECURE_SSL_REDIRECT
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Encryption of account secrets -----------------------------------------------------------

_FERNET_HOWTO = (
    "Make a key with `python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'` and set FERNET_KEYS to it "
    "(comma-separated; the first key encrypts, every key decrypts)."
)
FERNET_KEYS = env.list("FERNET_KEYS", default=[])
if not FERNET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(f"FERNET_KEYS is not set. {_FERNET_HOWTO}")
    # Debug only: a key derived from the secret key, so a bare checkout still runs.
    FERNET_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]
for _position, _key in enumerate(FERNET_KEYS, start=1):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"FERNET_KEYS key #{_position} is not a valid Fernet key (32 url-safe base64 bytes). "
            f"{_FERNET_HOWTO}"
        ) from None

# --- Mail providers -------------------------------------------------------------------------

MAILGUN_API_KEY = env.str("MAILGUN_API_KEY", default="")
MAILGUN_API_URL = env.str("MAILGUN_API_URL", default="https://api.mailgun.net/v3")
MAILGUN_WEBHOOK_SIGNING_KEY = env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default="")
ANYMAIL = {
    "MAILGUN_API_KEY": MAILGUN_API_KEY,
    "MAILGUN_API_URL": MAILGUN_API_URL,
    "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_WEBHOOK_SIGNING_KEY,
}

SMTP_ACCOUNTS_ALLOWED_NETWORKS = env.list("SMTP_ACCOUNTS_ALLOWED_NETWORKS", default=[])
SMTP_ACCOUNTS_CA_FILE = env.str("SMTP_ACCOUNTS_CA_FILE", default="")
SMTP_ACCOUNTS_TIMEOUT = env.float("SMTP_ACCOUNTS_TIMEOUT", default=15)
# How often beat reads the internal accounts' bounce mailboxes (IMAP).
SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS = env.int("SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS", default=300)
# Sent and failed mail older than this is pruned daily by beat (outbox.tasks.prune_messages).
SMTP_ACCOUNTS_LOG_RETENTION_DAYS = env.int("SMTP_ACCOUNTS_LOG_RETENTION_DAYS", default=90)
# The local dev inbox (debug only): `make run` serves it on this port and the app shows it.
SMTP_ACCOUNTS_DEV_INBOX_PORT = env.int("SMTP_ACCOUNTS_DEV_INBOX_PORT", default=1025)
SMTP_ACCOUNTS_DEV_INBOX_DIR = BASE_DIR / "var" / "dev-inbox"

# Sign in with Google / Microsoft (smtp_accounts/oauth.py): a provider is offered only when
# its client id is set. The URLs are overridable so tests can point them at a local server.
SMTP_ACCOUNTS_GOOGLE_CLIENT_ID = env.str("SMTP_ACCOUNTS_GOOGLE_CLIENT_ID", default="")
SMTP_ACCOUNTS_GOOGLE_CLIENT_SECRET = env.str("SMTP_ACCOUNTS_GOOGLE_CLIENT_SECRET", default="")
SMTP_ACCOUNTS_GOOGLE_AUTH_URL = env.str(
    "SMTP_ACCOUNTS_GOOGLE_AUTH_URL", default="https://accounts.google.com/o/oauth2/v2/auth"
)
SMTP_ACCOUNTS_GOOGLE_TOKEN_URL = env.str(
    "SMTP_ACCOUNTS_GOOGLE_TOKEN_URL", default="https://oauth2.googleapis.com/token"
)
SMTP_ACCOUNTS_MICROSOFT_CLIENT_ID = env.str("SMTP_ACCOUNTS_MICROSOFT_CLIENT_ID", default="")
SMTP_ACCOUNTS_MICROSOFT_CLIENT_SECRET = env.str(
    "SMTP_ACCOUNTS_MICROSOFT_CLIENT_SECRET", default=""
)
SMTP_ACCOUNTS_MICROSOFT_TENANT = env.str("SMTP_ACCOUNTS_MICROSOFT_TENANT", default="common")
_MICROSOFT_LOGIN = (
    f"https://login.microsoftonline.com/{SMTP_ACCOUNTS_MICROSOFT_TENANT}/oauth2/v2.0"
)
SMTP_ACCOUNTS_MICROSOFT_AUTH_URL = env.str(
    "SMTP_ACCOUNTS_MICROSOFT_AUTH_URL", default=f"{_MICROSOFT_LOGIN}/authorize"
)
SMTP_ACCOUNTS_MICROSOFT_TOKEN_URL = env.str(
    "SMTP_ACCOUNTS_MICROSOFT_TOKEN_URL", default=f"{_MICROSOFT_LOGIN}/token"
)
# Not environment variables: how long a started sign-in may take, and how long before its
# expiry an access token is refreshed (tests shrink them).
SMTP_ACCOUNTS_OAUTH_STATE_SECONDS = 600
SMTP_ACCOUNTS_OAUTH_REFRESH_MARGIN_SECONDS = 300

# Django's own mail (password resets, admin errors) goes through the System Account.
EMAIL_BACKEND = "outbox.backends.EmailBackend"
# Used only when a message names no sender; the System Account's address is used otherwise.
DEFAULT_FROM_EMAIL = "crm@localhost"

# --- Celery ---------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Unset broker: tasks run in-process (the embedded default), so the app works with nothing
# else running. Mail is then sent inside the request; retries wait for `celery -A crm beat`.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
# Sending limits are counted in the broker's Redis, shared by every worker; without a broker
# they are counted from the database (outbox.services.limits).
SMTP_ACCOUNTS_LIMITS_REDIS_URL = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
# Tests shrink the limits' windows (60 s, 3,600 s, 86,400 s) by this factor; 1 in production.
SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE = env.float("SMTP_ACCOUNTS_LIMIT_WINDOW_SCALE", default=1.0)
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge a task once it has run, and re-queue it if its worker dies: nothing is lost,
# and the outbox's conditional claim turns a second run into a no-op.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# When Redis goes away, a running send finishes and records its rows (Redis redelivers the
# message later, and that run finds nothing left to send).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes the worker's database connections around every task unless told to reuse
# them; crm/celery.py closes them the Django way instead (CONN_MAX_AGE, health checks), and
# this only bounds how many tasks one connection serves.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_POOL_LIMIT = 10
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis re-delivers a task not acknowledged within this time: longer than a task can
    # wait behind a backlog plus its run. The outbox's scheduler gives a task up for lost
    # only after this long (outbox/policy.py LOST_AFTER).
    "visibility_timeout": 2 * 60 * 60,
    # An enqueue must fail fast when Redis is down (the row stays queued and the sweeper
    # enqueues it later), never hang the web request.
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
    "max_retries": 1,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Campaign batches have their own queue, so system and customer-service mail never waits
# behind a campaign. Both queues are declared: a bare `celery -A crm worker` consumes both,
# while `-Q mail` gives a worker that never takes campaign work.
CELERY_TASK_DEFAULT_QUEUE = "mail"
CELERY_TASK_QUEUES = {"mail": {}, "campaigns": {}}
CELERY_TASK_ROUTES = {"outbox.tasks.deliver_batch": {"queue": "campaigns"}}
# The outbox's scheduler tick (outbox/policy.py SWEEP_INTERVAL) and the daily retention.
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {
        "task": "outbox.tasks.sweep_outbox",
        "schedule": 20.0,
        "options": {"expires": 15},  # a tick that waited this long is replaced by the next
    },
    "prune-outbox": {
        "task": "outbox.tasks.prune_messages",
        "schedule": 24 * 60 * 60.0,
        "options": {"expires": 60 * 60},
    },
    "poll-bounce-mailboxes": {
        "task": "outbox.tasks.poll_bounce_mailboxes",
        "schedule": float(SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS),
        # A poll that waited longer than its interval is replaced by the next one.
        "options": {"expires": SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS},
    },
}

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "mail.log": {"level": "WARNING"},  # aiosmtpd (dev inbox): a line per connection
        "flufl.bounce": {"level": "WARNING"},  # a line per detector per bounce read
    },
}
