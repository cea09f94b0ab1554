"""The CRM's sending accounts."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .. import crypto
from ..validators import normalize_domain, normalize_hostname, validate_header_safe
from .state import account_state


class AccountType(models.TextChoices):
    CAMPAIGNS = "campaigns", "Campaigns"
    CUSTOMER_SERVICE = "customer_service", "Customer Service"
    SYSTEM = "system", "System Account"


class Provider(models.TextChoices):
    EXTERNAL = "external", "External Provider"
    INTERNAL = "internal", "Internal Provider"


class Security(models.TextChoices):
    STARTTLS = "starttls", "STARTTLS (port 587)"
    SSL = "ssl", "SSL/TLS (port 465)"
    NONE = "none", "None (no encryption)"


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    GOOGLE = "google", "Google"
    MICROSOFT = "microsoft", "Microsoft"


NAME_TAKEN = "An account with this name exists (names are unique ignoring case)."


# Routing: which account of a type sends first, and how much it may send (blank = no limit).
ROUTING_FIELDS = ("priority", "max_per_minute", "max_per_hour", "max_per_day", "max_connections")
# The limits' windows in seconds, by field: never more than N in any such window.
LIMIT_WINDOWS = {"max_per_minute": 60, "max_per_hour": 3600, "max_per_day": 86400}


def _limit_field(label):
    return models.PositiveIntegerField(
        label, null=True, blank=True, validators=[MinValueValidator(1)]
    )


class SmtpAccount(models.Model):
    """An account the CRM sends through: Mailgun (external) or an SMTP server (internal).

    It is *ready* when it is active and verified (a test email's code was confirmed).
    """

    # Changing any of these changes where mail goes or who it claims to be from, so it
    # makes the account unverified again (see services.save_account).
    CONNECTION_FIELDS = (
        "provider", "host", "port", "username", "security", "domain", "email", "auth_method",
    )
    # What a form or a command may change.
    EDITABLE_FIELDS = (
        "name", "account_type", "provider", "domain", "email", "from_name", "host", "port",
        "username", "security", "is_active", "auth_method", "bounce_host", "bounce_port",
        "bounce_username", *ROUTING_FIELDS,
    )
    # Changing any of these sends the stored password somewhere new, so it must be retyped.
    PASSWORD_BOUND_FIELDS = ("host", "port", "username", "security")
    # Changing any of these makes the OAuth tokens worthless or wrong: they are dropped.
    TOKEN_BOUND_FIELDS = ("host", "port", "username", "auth_method")
    # The columns that hold OAuth tokens (Fernet tokens, like the password).
    TOKEN_FIELDS = ("oauth_refresh_token_encrypted", "oauth_access_token_encrypted")
    # The bounce mailbox (IMAP over TLS): where the account's server returns undelivered mail.
    # Its password is bound to all three, like the account's. Not a connection field: reading
    # bounces has nothing to do with whether the account may send.
    BOUNCE_FIELDS = ("bounce_host", "bounce_port", "bounce_username")
    LOADED_FIELDS = (*CONNECTION_FIELDS, *BOUNCE_FIELDS)  # what changed_fields() can tell

    name = models.CharField(
        "Account Name", max_length=100, unique=True, validators=[validate_header_safe]
    )
    account_type = models.CharField(
        "Account Type", max_length=20, choices=AccountType.choices, default=AccountType.SYSTEM
    )
    provider = models.CharField(
        "Provider", max_length=10, choices=Provider.choices, default=Provider.INTERNAL
    )
    domain = models.CharField("Domain", max_length=253, blank=True)
    email = models.EmailField("Email", max_length=254, validators=[validate_header_safe])
    from_name = models.CharField(
        "From Name", max_length=100, blank=True, validators=[validate_header_safe]
    )
    host = models.CharField("Host", max_length=253, blank=True)
    port = models.PositiveIntegerField(
        "Port",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
    )
    username = models.CharField(
        "User", max_length=254, blank=True, validators=[validate_header_safe]
    )
    password_encrypted = models.TextField(blank=True, editable=False)
    security = models.CharField(
        "TLS/SSL", max_length=10, choices=Security.choices, default=Security.STARTTLS
    )
    is_active = models.BooleanField("Is Active?", default=True)
    # Sign-in (see smtp_accounts/oauth.py). The access token is kept on the row, not in a
    # cache: the row is what every worker shares and locks, so a refresh is done once and
    # its (possibly rotated) refresh token is written in the same transaction.
    auth_method = models.CharField(
        "Sign-in", max_length=10, choices=AuthMethod.choices, default=AuthMethod.PASSWORD
    )
    oauth_refresh_token_encrypted = models.TextField(blank=True, editable=False)
    oauth_access_token_encrypted = models.TextField(blank=True, editable=False)
    oauth_access_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    signed_in_as = models.CharField("Signed in as", max_length=254, blank=True, editable=False)
    bounce_host = models.CharField("IMAP server", max_length=253, blank=True)
    bounce_port = models.PositiveIntegerField(
        "IMAP TCP number", default=993, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    bounce_username = models.CharField("Mailbox login", max_length=254, blank=True)
    bounce_password_encrypted = models.TextField(blank=True, editable=False)
    # The last time the bounce mailbox was read, and what went wrong then ("" when it worked).
    bounce_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    bounce_error = models.TextField(blank=True, editable=False)
    verified_at = models.DateTimeField("Verified", null=True, blank=True, editable=False)
    priority = models.PositiveIntegerField(
        "Priority", default=10, help_text="Lower sends first among the accounts of a type."
    )
    max_per_minute = _limit_field("Messages per minute")
    max_per_hour = _limit_field("Messages per hour")
    max_per_day = _limit_field("Messages per day")
    # Open connections to the server from every worker together (Exchange Online: 3).
    max_connections = _limit_field("Connections at once")
    # Set by delivery when the server throttles (421, quota replies, Mailgun 429): the account
    # sends nothing until then, and the list says why.
    paused_until = models.DateTimeField("Paused until", null=True, blank=True, editable=False)
    pause_reason = models.TextField("Pause reason", blank=True, editable=False)
    # The last configuration problem delivery ran into (login refused, TLS failure …).
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField("Last Update", auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "SMTP account"
        indexes = [
            models.Index(fields=["account_type", "is_active"]),
            models.Index(fields=["-updated_at"]),
        ]
        constraints = [
            # "Dev inbox" and "dev INBOX" would be one account to a person reading the list.
            models.UniqueConstraint(
                Lower("name"), name="smtp_account_name_unique_ignoring_case",
                violation_error_message=NAME_TAKEN,
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        """Cross-field rules: what each provider needs, and an email that fits the domain."""
        errors = {}
        if self.is_external:
            errors.update(self._clean_external())
        else:
            errors.update(self._clean_internal())
        if errors:
            raise ValidationError(errors)

    def _clean_external(self):
        if not self.domain:
            return {"domain": "Enter the Mailgun sending domain, e.g. mg.example.com."}
        try:
            self.domain = normalize_domain(self.domain)
        except ValidationError as err:
            return {"domain": err.messages}
        try:
            email_domain = (self.email or "").rpartition("@")[2].encode("idna").decode().lower()
        except UnicodeError:
            email_domain = ""
        in_domain = email_domain == self.domain or email_domain.endswith("." + self.domain)
        if self.email and not in_domain:
            return {
                "email": f"Use an address at {self.domain} (the part after the @ must be the "
                "Domain)."
            }
        return {}

    def _clean_internal(self):
        errors = {}
        try:
            self.host = normalize_hostname(self.host)
        except ValidationError as err:
            errors["host"] = err.messages
        if not self.port:
            errors["port"] = "Enter the server's port, e.g. 587 for STARTTLS or 465 for SSL/TLS."
        if self.username and self.security == Security.NONE:
            errors["security"] = (
                "Choose STARTTLS or SSL/TLS: a password is never sent over an unencrypted "
                "connection. Use None only for a relay that needs no login."
            )
        if self.uses_oauth and not self.username:
            errors["username"] = (
                "Enter the mailbox you sign in with (e.g. you@gmail.com): the server logs "
                "in the signed-in token as this User."
            )
        return errors

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # Remember how the account connected when loaded, to tell what an edit changed.
        instance._loaded = {
            f: getattr(instance, f) for f in cls.LOADED_FIELDS if f in field_names
        }
        return instance

    def changed_fields(self, fields):
        """Names among `fields` whose value differs from the one loaded from the database."""
        loaded = getattr(self, "_loaded", None)
        if self.pk is None or loaded is None:
            return set()
        return {f for f in fields if f in loaded and loaded[f] != getattr(self, f)}

    @property
    def is_external(self):
        return self.provider == Provider.EXTERNAL

    @property
    def is_verified(self):
        return self.verified_at is not None

    @property
    def is_ready(self):
        return self.is_active and self.is_verified

    @property
    def uses_oauth(self):
        """True when the account signs in with Google or Microsoft instead of a password."""
        return self.auth_method != AuthMethod.PASSWORD

    @property
    def is_signed_in(self):
        """True when OAuth tokens are held (a refresh token, so mail can go)."""
        return self.uses_oauth and bool(self.oauth_refresh_token_encrypted)

    def clear_tokens(self):
        """Forget the OAuth tokens and identity (the caller saves)."""
        self.oauth_refresh_token_encrypted = self.oauth_access_token_encrypted = ""
        self.oauth_access_token_expires_at = None
        self.signed_in_as = ""

    @property
    def state(self):
        """The one AccountState the list shows (see models/state.py)."""
        return account_state(self)

    @property
    def is_paused(self):
        return self.paused_until is not None and self.paused_until > timezone.now()

    @property
    def limits(self):
        """{window seconds: max messages} for the limits this account sets."""
        return {
            seconds: getattr(self, field)
            for field, seconds in LIMIT_WINDOWS.items() if getattr(self, field)
        }

    @property
    def has_password(self):
        return bool(self.password_encrypted)

    @sensitive_variables()
    def set_password(self, raw_password):
        """Encrypt and store `raw_password` (an empty value clears it)."""
        self.password_encrypted = crypto.encrypt(raw_password) if raw_password else ""

    @sensitive_variables()
    def get_password(self):
        """The plaintext password ("" if none). Raises crypto.UndecryptableSecret."""
        if not self.password_encrypted:
            return ""
        return crypto.decrypt(self.password_encrypted)

    @property
    def has_bounce_mailbox(self):
        """True when bounces are read over IMAP: an internal account with an IMAP host."""
        return not self.is_external and bool(self.bounce_host)

    @property
    def has_bounce_password(self):
        return bool(self.bounce_password_encrypted)

    @sensitive_variables()
    def set_bounce_password(self, raw_password):
        """Encrypt and store the bounce mailbox's password (an empty value clears it)."""
        self.bounce_password_encrypted = crypto.encrypt(raw_password) if raw_password else ""

    @sensitive_variables()
    def get_bounce_password(self):
        """The bounce mailbox's plaintext password ("" if none). Raises UndecryptableSecret."""
        if not self.bounce_password_encrypted:
            return ""
        return crypto.decrypt(self.bounce_password_encrypted)

    @property
    def from_address(self):
        """The From header: `From Name <email>`, properly quoted."""
        from email.utils import formataddr

        return formataddr((self.from_name, self.email)) if self.from_name else self.email

    @property
    def server_label(self):
        """What the list shows in its Host column."""
        if self.is_external:
            return f"Mailgun · {self.domain}"
        return f"{self.host}:{self.port}" if self.port else self.host

    def record_error(self, message):
        """Keep a configuration problem on the account so admins see it on the list."""
        self.last_error = message
        self.last_error_at = timezone.now()
        SmtpAccount.objects.filter(pk=self.pk).update(
            last_error=message, last_error_at=self.last_error_at
        )

    def record_bounce_check(self, error=""):
        """Keep when the bounce mailbox was last read and what went wrong ("" = it worked)."""
        self.bounce_error = error
        self.bounce_checked_at = timezone.now()
        SmtpAccount.objects.filter(pk=self.pk).update(
            bounce_error=error, bounce_checked_at=self.bounce_checked_at
        )
