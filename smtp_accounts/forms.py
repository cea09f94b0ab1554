"""The account form, used by the pages and (with plain dicts) by the commands."""

from django import forms
from django.views.decorators.debug import sensitive_variables

from . import oauth, services
from .bounce_form import BOUNCE_FORM_FIELDS, BounceMailboxFields
from .models import NAME_TAKEN, AuthMethod, Provider, Security, SmtpAccount
from .models.account import ROUTING_FIELDS
from .validators import normalize_domain, normalize_hostname

# The product's presets: each fills Host, and port 587 with STARTTLS, and the provider's
# published sending limits (Gmail about 500 a day for a consumer account, Workspace 2,000;
# Exchange Online 30 a minute and 10,000 a day). Yahoo and Comcast publish none.
PRESETS = {
    "gmail": ("Gmail", "smtp.gmail.com", {"max_per_day": 500}),
    "outlook": ("Outlook", "smtp-mail.outlook.com",
                {"max_per_minute": 30, "max_per_day": 10000, "max_connections": 3}),
    "yahoo": ("Yahoo", "smtp.mail.yahoo.com", {}),
    "comcast": ("Comcast", "smtp.comcast.net", {}),
}
PRESET_CHOICES = [("", "Custom")] + [(key, preset[0]) for key, preset in PRESETS.items()]
LIMIT_HELP = "Blank = no limit. "

# The presets whose provider offers Sign in with OAuth (the page suggests it).
PRESET_SIGN_IN = {"gmail": AuthMethod.GOOGLE, "outlook": AuthMethod.MICROSOFT}

EXTERNAL_ONLY = ("domain",)
INTERNAL_ONLY = ("host", "port", "username", "password", "security", "auth_method",
                 *BOUNCE_FORM_FIELDS)


class SmtpAccountForm(BounceMailboxFields, forms.ModelForm):
    """Create or edit an account. The password is write-only: never rendered, never echoed.

    Left blank on edit it keeps the stored one, unless host, port, user or TLS/SSL changed:
    a stored password never goes to a server it was not typed for.
    """

    preset = forms.ChoiceField(
        label="Provider preset", choices=PRESET_CHOICES, required=False,
        help_text="Fills Host, Port 587 and STARTTLS for a well-known provider.",
    )
    # Range-checked here, before clean(): an out-of-range port is a typo, not a "moved" account
    # that needs its password again.
    port = forms.IntegerField(
        label="Port", required=False, min_value=1, max_value=65535,
        widget=forms.NumberInput(attrs={"min": 1, "max": 65535}),
    )
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = SmtpAccount
        fields = list(SmtpAccount.EDITABLE_FIELDS)
        widgets = {
            "provider": forms.RadioSelect,
            "email": forms.EmailInput(attrs={"placeholder": "support@example.com"}),
            "domain": forms.TextInput(attrs={"placeholder": "mg.example.com"}),
            "host": forms.TextInput(attrs={"placeholder": "smtp.example.com"}),
            "from_name": forms.TextInput(attrs={"placeholder": "Demo Support"}),
        }
        help_texts = {
            "domain": "The part of the Email after the @, as set up in Mailgun.",
            "username": "Often the full email address; a relay's login may differ from Email.",
            "security": "STARTTLS on 587 or SSL/TLS on 465. None only for a relay without login.",
            "priority": "Lower sends first among the ready accounts of this type; the next one "
                        "takes over while this one is paused or at a limit.",
            "max_per_minute": LIMIT_HELP + "Exchange Online refuses more than 30 a minute.",
            "max_per_hour": LIMIT_HELP + "Counted over any 60 minutes, by every worker together.",
            "max_per_day": LIMIT_HELP + "Gmail blocks an account for up to 24 hours past about "
                           "500 a day (Workspace: 2,000).",
            "max_connections": LIMIT_HELP + "Counted over every worker together; Exchange "
                               "Online allows 3 per mailbox.",
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["provider"].choices = Provider.choices
        # Only the chosen provider's fields are posted (the page hides the others), so the
        # per-provider requirements live in clean() and SmtpAccount.clean().
        self.fields["security"].required = False
        self._offer_sign_in()
        self.order_fields(["provider", "name", "account_type", "preset", *self.Meta.fields])
        self.fields["priority"].required = False  # blank or left out: keeps the current one
        for name in ROUTING_FIELDS[1:]:
            self.fields[name].error_messages["min_value"] = (
                "Enter 1 or more, or leave it blank for no limit."
            )
        known = {preset[1]: key for key, preset in PRESETS.items()}
        self.initial.setdefault("preset", known.get(self.instance.host, ""))
        # Required for one provider only, so not `required`, but marked as such (an asterisk).
        for name in ("host", "port", "security", "domain"):
            self.fields[name].shown_required = True
        self.fields["name"].help_text = (
            f"Up to {SmtpAccount._meta.get_field('name').max_length} characters, unique."
        )
        if self.instance.pk and self.instance.has_password:
            self.fields["password"].help_text = (
                "A password is stored. Leave blank to keep it; it must be typed again if "
                "Host, Port, User or TLS/SSL change."
            )

    def _offer_sign_in(self):
        """Sign-in offers Google / Microsoft only where the deployment has their client id;
        a POST without the field keeps the account's Sign-in."""
        field = self.fields["auth_method"]
        offered = {AuthMethod.PASSWORD, *oauth.offered_methods()}
        field.choices = [(v, label) for v, label in AuthMethod.choices if v in offered]
        field.required = False
        field.error_messages["invalid_choice"] = (
            "That Sign-in is not set up on this CRM (its OAuth client id is not configured); "
            "choose Password."
        )
        field.help_text = ("Gmail and Microsoft 365 mailboxes can sign in with OAuth instead of "
                           "a password: no password is stored.")

    @property
    def sign_in_offered(self):
        """True when a choice besides Password is offered."""
        return len(self.fields["auth_method"].choices) > 1

    @property
    def preset_sign_in(self):
        """{preset: sign-in} for the page's script, for the offered sign-ins only."""
        offered = oauth.offered_methods()
        return {key: method for key, method in PRESET_SIGN_IN.items() if method in offered}

    @property
    def app_password_provider(self):
        """"gmail" or "yahoo" when a password account points there (they need an app
        password); "" otherwise."""
        method = self.data.get("auth_method") or self.initial.get("auth_method")
        host = (self.data.get("host") or self.initial.get("host") or "").strip().lower()
        if (method or self.instance.auth_method) != AuthMethod.PASSWORD:
            return ""
        return next((name for name in ("gmail", "yahoo")
                     if host == f"{name}.com" or host.endswith(f".{name}.com")), "")

    @property
    def mailgun_is_configured(self):
        return services.mailgun_is_configured()

    @property
    def preset_data(self):
        """{preset: {"host": …, "limits": {field: n}}} for the page's script, so the presets
        live only in PRESETS."""
        return {key: {"host": p[1], "limits": p[2]} for key, p in PRESETS.items()}

    @property
    def provider_value(self):
        """The provider the form shows (what was posted, else the instance's)."""
        return self.data.get("provider") or self.initial.get("provider") or self.instance.provider

    def full_clean(self):
        super().full_clean()
        # The bound field copied its help text when cleaning made it: change both.
        password, bound = self.fields["password"], self["password"]
        if self.errors.get("password"):
            password.help_text = ""  # the error says what to do; "leave blank" would not
        elif self.errors and self.data.get("password"):
            # A refused form never sends the password back (DESIGN: write-only), so the next
            # Save would fail on it: say so where the admin looks.
            password.help_text = (
                "Type the password again: it is not kept when the form has errors."
            )
            password.needs_retyping = True
        bound.help_text = password.help_text

    def clean_name(self):
        name = self.cleaned_data.get("name")
        others = SmtpAccount.objects.exclude(pk=self.instance.pk)
        if name and others.filter(name__iexact=name).exists():
            raise forms.ValidationError(NAME_TAKEN)
        return name

    def clean_host(self):
        host = self.cleaned_data.get("host")
        return normalize_hostname(host) if host else host

    def clean_auth_method(self):
        return self.cleaned_data.get("auth_method") or self.instance.auth_method

    def clean_domain(self):
        domain = self.cleaned_data.get("domain")
        return normalize_domain(domain) if domain else domain

    def clean(self):
        data = super().clean()
        self._keep_omitted_routing(data)
        self._apply_preset(data)
        if data.get("provider") == Provider.EXTERNAL:
            self._ignore(INTERNAL_ONLY)
            data.update(host="", port=None, username="", password="", security=Security.STARTTLS,
                        auth_method=AuthMethod.PASSWORD)
        else:
            self._ignore(EXTERNAL_ONLY)
            data["domain"] = ""
            if not data.get("security"):
                self.add_error("security", "Choose how to secure the connection.")
            if data.get("auth_method", AuthMethod.PASSWORD) == AuthMethod.PASSWORD:
                self._check_password(data)
            else:
                self._errors.pop("password", None)
                data["password"] = ""  # an OAuth account keeps no password
        self.clean_bounce_mailbox(data, internal=data.get("provider") != Provider.EXTERNAL)
        return data

    def _ignore(self, fields):
        """Forget errors of the other provider's fields: without JS they are posted too, and
        their values are dropped anyway."""
        for name in fields:
            self._errors.pop(name, None)

    def _keep_omitted_routing(self, data):
        """Routing fields are optional in a POST: one that leaves a field out (an older
        client or script) keeps the stored value; a blank priority keeps it too."""
        for name in ROUTING_FIELDS:
            omitted = name not in self.data
            if omitted or (name == "priority" and data.get(name) is None):
                data[name] = getattr(self.instance, name)

    def _apply_preset(self, data):
        preset = PRESETS.get(data.get("preset") or "")
        if preset and not data.get("host"):
            data["host"] = preset[1]
            data["port"] = data.get("port") or 587
            data["security"] = Security.STARTTLS
            self.errors.pop("host", None)
            for name, limit in preset[2].items():  # a limit the admin typed wins
                if data.get(name) is None:
                    data[name] = limit

    def _check_password(self, data):
        password, username = data.get("password"), data.get("username")
        if password and not username:
            self.add_error("username", "Enter the User that goes with this password.")
        if not username or password:
            return
        moved = [
            f for f in SmtpAccount.PASSWORD_BOUND_FIELDS
            if f in data and data[f] != getattr(self.instance, f)
        ]
        if not self.instance.has_password:
            self.add_error("password", "Enter the password for this User.")
        elif self.instance.pk and moved:
            self.add_error(
                "password",
                "Type the password again: Host, Port, User or TLS/SSL changed, and a stored "
                "password is never sent to a new server.",
            )

    def _update_errors(self, errors):
        # SmtpAccount.clean() checks host and port again; a field the form already refused
        # would otherwise show two messages for one mistake.
        if hasattr(errors, "error_dict"):
            for name in [n for n in errors.error_dict if n in self._errors]:
                del errors.error_dict[name]
            if not errors.error_dict:
                return
        super()._update_errors(errors)

    @sensitive_variables("password")
    def save(self, commit=True):
        account = super().save(commit=False)
        password = self.cleaned_data.get("password") or None
        unused = account.is_external or not account.username or account.uses_oauth
        if unused and account.has_password:
            # Mailgun uses the deployment's API key, a relay without User needs no password
            # and an OAuth account signs in with tokens: drop the stored one rather than keep
            # a secret nothing uses.
            password = ""
        if commit:
            services.save_account(account, password=password, user=self.user,
                                  bounce_password=self.bounce_password_to_save)
        return account
