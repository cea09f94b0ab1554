"""Data migrations, run forwards on a database that holds the old data."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
APP = "smtp_accounts"


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([(APP, target)])
    return executor.loader.project_state([(APP, target)]).apps


def test_case_duplicate_names_are_numbered_before_the_constraint():
    old = migrate("0002_index_provider_message_id").get_model(APP, "SmtpAccount")
    for name in ("Dev inbox", "dev INBOX", "DEV INBOX", "Dev inbox (2)x", "Other"):
        old.objects.create(name=name, email="a@example.com")
    try:
        new = migrate("0006_account_name_unique_ignoring_case").get_model(APP, "SmtpAccount")
        names = list(new.objects.order_by("pk").values_list("name", flat=True))
        assert names == ["Dev inbox", "dev INBOX (2)", "DEV INBOX (3)", "Dev inbox (2)x",
                         "Other"]
    finally:
        new_state = MigrationExecutor(connection)
        new_state.loader.build_graph()
        new_state.migrate(new_state.loader.graph.leaf_nodes())
