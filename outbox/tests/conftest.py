"""Fixtures of the outbox tests."""

import pytest
from django.utils import timezone


@pytest.fixture
def ready(smtp_server, smtp_account_for):
    """ready(account_type="system", **fields) -> a verified, active account on smtp_server."""

    def make(account_type="system", **fields):
        fields = {"verified_at": timezone.now(), **fields}
        return smtp_account_for(smtp_server, account_type=account_type, **fields)

    return make
