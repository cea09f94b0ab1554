"""Template filters for the Mail Log pages."""

from django import template

from smtp_accounts.models import AccountType

register = template.Library()


@register.filter
def type_label(account_type):
    """An account type's label ("System Account"), or the stored value if it is unknown."""
    try:
        return AccountType(account_type).label
    except ValueError:
        return account_type
