"""Moving OutboundMessage into the outbox app keeps every row of an existing deployment."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("smtp_accounts", "0002_index_provider_message_id"), ("outbox", None)]


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_there_after_it():
    executor = MigrationExecutor(connection)
    leaves = [key for key in executor.loader.graph.leaf_nodes() if key[0] in ("smtp_accounts",
              "outbox")]  # fmt: skip
    executor.migrate(BEFORE)  # today's schema: the model lives in smtp_accounts
    old = MigrationExecutor(connection).loader.project_state([BEFORE[0]]).apps
    account = old.get_model("smtp_accounts", "SmtpAccount").objects.create(
        name="Relay", account_type="system", provider="internal", email="crm@example.com"
    )
    old.get_model("smtp_accounts", "OutboundMessage").objects.create(
        account=account, account_type="system", from_email="crm@example.com",
        to=["ann@example.com"], subject="Invoice 42", status="sent",
        provider_message_id="<42@example.com>", idempotency_key="invoice-42",
    )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(leaves)
    executor.loader.build_graph()

    new = executor.loader.project_state(leaves).apps
    message = new.get_model("outbox", "OutboundMessage").objects.get()
    assert (message.subject, message.status, message.account_id) == (
        "Invoice 42", "sent", account.pk)  # fmt: skip
    assert message.provider_message_id == "<42@example.com>" and message.enqueued_at is None
    Attempt = new.get_model("outbox", "Attempt")
    Attempt.objects.create(message=message, outcome="sent", account_name="Relay")
    assert Attempt.objects.get().message_id == message.pk
