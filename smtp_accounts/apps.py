from django.apps import AppConfig
from django.core import checks as django_checks


class SmtpAccountsConfig(AppConfig):
    name = "smtp_accounts"
    verbose_name = "SMTP Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks

        django_checks.register(checks.check_fernet_keys, django_checks.Tags.security, self.label)
        django_checks.register(checks.check_ca_file, self.label)
        django_checks.register(
            checks.check_mailgun_settings, django_checks.Tags.database, self.label
        )
