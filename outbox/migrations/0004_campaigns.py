"""Campaigns (issue 12): each message keeps its recipient's placeholder values."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("outbox", "0003_suppression")]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="merge_data",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
