# OutboundMessage moved to the outbox app (outbox/migrations/0001_initial.py). State only:
# the table, smtp_accounts_outboundmessage, and every row in it stay where they are.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('smtp_accounts', '0002_index_provider_message_id'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='OutboundMessage')],
            database_operations=[],
        ),
    ]
