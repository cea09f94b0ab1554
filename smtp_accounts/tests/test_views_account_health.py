"""The SMTP Accounts list's Last 24 h line: Sent and Failed per account, as Mail Log links."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

LIST = reverse("smtp_accounts:list")


def _message(account, status, age=timedelta(minutes=5)):
    # Through the reverse relation: smtp_accounts never imports outbox (test_layout.py).
    message = account.messages.create(
        account_type=account.account_type, from_email=account.email,
        to=["someone@example.org"], subject="Hello", status=status,
    )  # fmt: skip
    account.messages.filter(pk=message.pk).update(created_at=timezone.now() - age)


def test_each_row_counts_its_last_day_and_links_the_log(admin_client, make_account):
    busy = make_account(name="Busy")
    quiet = make_account(name="Quiet")
    for status in ("sent", "sent", "failed", "queued"):
        _message(busy, status)
    _message(busy, "failed", age=timedelta(hours=25))  # older than a day: not counted
    page = admin_client.get(LIST).content.decode()
    log = reverse("outbox:list")
    assert f'href="{log}?account={busy.pk}&amp;status=sent">2 sent</a>' in page
    assert f'href="{log}?account={busy.pk}&amp;status=failed">1 failed</a>' in page
    assert f'href="{log}?account={quiet.pk}&amp;status=failed">0 failed</a>' in page


def test_the_counts_cost_no_query_per_row(admin_client, make_account):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LIST).status_code == 200
        return len(captured)

    first = make_account(name="First")
    _message(first, "sent")
    few = queries()
    for number in range(10):
        _message(make_account(name=f"More {number}"), "failed")
    assert queries() == few
