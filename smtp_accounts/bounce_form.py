"""The account form's *Bounce mailbox (IMAP)* fields, kept apart from the rest of the form.

An internal account may name the IMAP mailbox its SMTP server returns undelivered mail to.
Its password is as write-only as the account's: never rendered, kept when left blank, and
typed again when the IMAP host, port or user change (a stored password never goes to a new
server). A POST without any of these fields (an older script) leaves the mailbox as stored.
"""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from .models import SmtpAccount
from .validators import normalize_hostname

# The labels avoid the words Host, Port, User and Password: those label the SMTP fields, and
# a label lookup by those words (tests outside the project use them) must find one field.

BOUNCE_PORT = 993  # IMAP over TLS: the only way the mailbox is read
BOUNCE_FORM_FIELDS = (*SmtpAccount.BOUNCE_FIELDS, "bounce_password")


class BounceMailboxFields(forms.Form):
    """Mixed into SmtpAccountForm, before ModelForm. `bounce_password_to_save` is what
    clean() decided: a new password, "" to drop the stored one, or None to keep it."""

    bounce_port = forms.IntegerField(
        label="IMAP TCP number", required=False, min_value=1, max_value=65535,
        widget=forms.NumberInput(attrs={"min": 1, "max": 65535, "placeholder": BOUNCE_PORT}),
        help_text="IMAP over TLS, usually 993.",
    )
    bounce_password = forms.CharField(
        label="Mailbox passphrase", required=False, strip=False, max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        minutes = max(1, round(settings.SMTP_ACCOUNTS_BOUNCE_POLL_SECONDS / 60))
        self.fields["bounce_host"].help_text = (
            f"Optional. Where this server returns undelivered mail; read every {minutes} "
            "min. Bounces are marked as read, nothing is deleted."
        )
        self.fields["bounce_host"].widget.attrs["placeholder"] = "imap.example.com"
        if self.instance.has_bounce_password:
            self.fields["bounce_password"].help_text = (
                "A password is stored. Leave blank to keep it; it must be typed again if the "
                "IMAP host, port or user change."
            )
        self.bounce_password_to_save = None

    def clean_bounce_host(self):
        host = self.cleaned_data.get("bounce_host")
        return normalize_hostname(host) if host else ""

    def clean_bounce_mailbox(self, data, internal):
        """Settle the bounce fields in `data` (cleaned_data) for an internal or external
        account; errors go beside the fields."""
        if internal and not any(name in self.data for name in BOUNCE_FORM_FIELDS):
            for name in SmtpAccount.BOUNCE_FIELDS:  # not posted at all: keep what is stored
                data[name] = getattr(self.instance, name)
            return
        if not internal or not data.get("bounce_host"):
            self._drop_bounce_mailbox(data)
            return
        data["bounce_port"] = data.get("bounce_port") or BOUNCE_PORT
        if not data.get("bounce_username"):
            self.add_error("bounce_username", "Enter the IMAP user of the bounce mailbox.")
        self._check_bounce_password(data)

    def _drop_bounce_mailbox(self, data):
        for name in BOUNCE_FORM_FIELDS:
            self._errors.pop(name, None)  # a mistake in fields that are dropped is moot
        data.update(bounce_host="", bounce_port=BOUNCE_PORT, bounce_username="")
        if self.instance.has_bounce_password:
            self.bounce_password_to_save = ""

    def _check_bounce_password(self, data):
        password = data.get("bounce_password")
        if password:
            self.bounce_password_to_save = password
            return
        moved = [f for f in SmtpAccount.BOUNCE_FIELDS if data.get(f) != getattr(self.instance, f)]
        if not self.instance.has_bounce_password:
            self.add_error("bounce_password", "Enter the IMAP password of the bounce mailbox.")
        elif self.instance.pk and moved:
            self.add_error("bounce_password", ValidationError(
                "Type the IMAP password again: the IMAP host, port or user changed, and a "
                "stored password is never sent to a new server."
            ))
