"""The Celery tasks, run inline: each loads by id, calls its service, decides on a retry.

test_worker.py runs the same tasks in a real worker process on Redis.
"""

import re

import pytest
from django.utils import timezone

from smtp_accounts import services, tasks
from smtp_accounts.models import TestEmail


@pytest.fixture
def account(smtp_server, smtp_account_for):
    return smtp_account_for(smtp_server, verified_at=timezone.now())


def test_send_test_email_mails_the_code(account, smtp_server):
    test = services.request_test_email(account, to="admin@example.com")

    assert tasks.send_test_email.apply(args=[test.pk]).successful()

    [received] = smtp_server.messages
    assert re.search(r"^Confirmation code: \d{6}\r?$", received.message.get_content(), re.M)
    assert TestEmail.objects.get(pk=test.pk).status == TestEmail.Status.SENT


def test_send_test_email_does_not_retry_a_failure(account, smtp_server):
    test = services.request_test_email(account, to="admin@example.com")
    smtp_server.fail("mail", "421 4.3.2 Service shutting down")

    result = tasks.send_test_email.apply(args=[test.pk])

    assert result.successful()  # no retry: the admin reads the reason in the pop-up
    test.refresh_from_db()
    assert test.status == TestEmail.Status.FAILED and "421 4.3.2" in test.error
    assert smtp_server.messages == []
