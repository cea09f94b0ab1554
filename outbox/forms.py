"""The Mail Log's filters (GET), the Retry failed confirmation (POST) and the Suppressions
search (GET)."""

from django import forms

from smtp_accounts.models import AccountType, SmtpAccount

from .models import OutboundMessage


class MailLogFilterForm(forms.Form):
    """`account`, `status`, `type` and `q`, all optional. A value that is not valid is
    reported beside its field and left out of the filter; the rest still applies."""

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search To or Subject"}),
    )
    account = forms.ModelChoiceField(
        SmtpAccount.objects.order_by("name").only("pk", "name"),
        required=False,
        empty_label="All accounts",
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "All statuses"), *OutboundMessage.Status.choices]
    )
    type = forms.ChoiceField(
        required=False, label="Type", choices=[("", "All types"), *AccountType.choices]
    )

    def clean_q(self):
        # PostgreSQL refuses NUL in text; nobody searches for one.
        return self.cleaned_data["q"].replace("\x00", "").strip()

    def filters(self):
        """The valid filters as keyword arguments of services.filter_messages."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {name: data[name] for name in self.fields if data.get(name)}


class RetryFailedForm(forms.Form):
    """Retry failed: every failed message, or only those of `account`."""

    account = forms.ModelChoiceField(
        SmtpAccount.objects.all(), required=False, widget=forms.HiddenInput
    )


class SuppressionSearchForm(forms.Form):
    """`q`: text in an address or its note, any case."""

    q = forms.CharField(
        required=False,
        max_length=254,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search addresses"}),
    )

    def query(self):
        """The cleaned search text, or "" when there is none or it is not valid."""
        if not self.is_valid():
            return ""
        return self.cleaned_data["q"].replace("\x00", "").strip()
