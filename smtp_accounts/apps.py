from django.apps import AppConfig


class SmtpAccountsConfig(AppConfig):
    name = "smtp_accounts"
    verbose_name = "SMTP Accounts"
    default_auto_field = "django.db.models.BigAutoField"
