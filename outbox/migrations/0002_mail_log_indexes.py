"""Indexes the Mail Log's plans asked for (bench/README.md): its newest-first order, one
account's mail by status, and, on PostgreSQL only, trigram indexes for its search (To or
Subject, any case), matching the SQL Django writes for `icontains`: UPPER(col::text) LIKE."""

from django.db import migrations, models

TRIGRAM = {
    "outbox_log_to_trgm_idx": 'UPPER(("to")::text)',
    "outbox_log_subject_trgm_idx": 'UPPER(("subject")::text)',
}


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite scans; its databases are small
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # trusted since PG 13
    for name, expression in TRIGRAM.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON smtp_accounts_outboundmessage "
            f"USING gin ({expression} gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in TRIGRAM:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]

    operations = [
        migrations.AddIndex(
            model_name="outboundmessage",
            index=models.Index(fields=["created_at", "id"], name="outbox_log_newest_idx"),
        ),
        migrations.AddIndex(
            model_name="outboundmessage",
            index=models.Index(
                fields=["account", "status", "created_at"], name="outbox_log_account_idx"
            ),
        ),
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
