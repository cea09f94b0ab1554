"""Commands that change accounts name their actor for the audit trail."""

from smtp_accounts import audit


class AuditedCommandMixin:
    """Entries written while the command runs name `command:<OS user>`."""

    def execute(self, *args, **options):
        with audit.acting_as(audit.command_actor()):
            return super().execute(*args, **options)
