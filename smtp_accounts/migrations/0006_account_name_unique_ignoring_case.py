"""Account names become unique ignoring case ("Dev inbox" and "dev INBOX" are one name).

Existing case-duplicates are renamed first, so the constraint can be added: the oldest
account (lowest id) keeps its name, each later one gets a number, e.g. "dev INBOX" becomes
"dev INBOX (2)". Admins see the new names on the list; nothing else about the accounts
changes. Reversing drops the constraint and keeps the new names.
"""

from django.db import migrations, models
from django.db.models.functions import Lower

MAX_LENGTH = 100


def number_case_duplicates(apps, schema_editor):
    SmtpAccount = apps.get_model("smtp_accounts", "SmtpAccount")
    taken = set()
    for account in SmtpAccount.objects.order_by("pk").only("pk", "name"):
        if account.name.lower() not in taken:
            taken.add(account.name.lower())
            continue
        number = 2
        while (new := _numbered(account.name, number)).lower() in taken:
            number += 1
        taken.add(new.lower())
        SmtpAccount.objects.filter(pk=account.pk).update(name=new)


def _numbered(name, number):
    suffix = f" ({number})"
    return name[: MAX_LENGTH - len(suffix)] + suffix


class Migration(migrations.Migration):

    dependencies = [
        ("smtp_accounts", "0005_move_outbox_to_its_own_app"),
    ]

    operations = [
        migrations.RunPython(number_case_duplicates, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="smtpaccount",
            constraint=models.UniqueConstraint(
                Lower("name"), name="smtp_account_name_unique_ignoring_case",
                violation_error_message=(
                    "An account with this name exists (names are unique ignoring case)."
                ),
            ),
        ),
    ]
