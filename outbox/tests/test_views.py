"""The Mail Log pages as an admin uses them: filters, paging, the message page, Retry; and
the Suppressions page with Remove."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from outbox.models import OutboundMessage, Suppression
from outbox.services import suppressions

LIST = reverse("outbox:list")
RETRY_FAILED = reverse("outbox:retry_failed")
REFUSED = {"outcome": "permanent", "code": 550,
           "reason": "5.1.1 <gone@example.org>: Recipient address rejected"}  # fmt: skip


def rows(response):
    """The message ids listed, in page order."""
    return [message.pk for message in response.context["object_list"]]


@pytest.fixture
def account(make_account):
    return make_account(name="System Mail", verified_at=timezone.now())


def test_empty_log_says_what_it_is_for(admin_client):
    page = admin_client.get(LIST).content.decode()
    assert "No mail sent yet" in page
    assert "whether it went out" in page


def test_list_shows_the_columns_newest_first(admin_client, account, make_message):
    old = make_message(account, subject="Older")
    new = make_message(account, status="failed", to=["bob@example.org"], subject="Newer",
                       last_error="550 5.1.1 No such user", history=[REFUSED])  # fmt: skip
    response = admin_client.get(LIST)
    page = response.content.decode()
    for column in ("Date", "Account", "Type", "To", "Subject", "Status", "Attempts"):
        assert f'<th scope="col">{column}</th>' in page
    assert rows(response) == [new.pk, old.pk]
    assert "bob@example.org" in page and "System Mail" in page
    assert "550 5.1.1 No such user" in page  # why it failed, on the row
    assert reverse("outbox:detail", args=[new.pk]) in page
    assert "secret body" not in page


def test_a_personalized_subject_shows_as_its_recipient_saw_it(admin_client, account,
                                                               make_message):
    message = make_message(account, subject="Hi %recipient.name%, your offer",
                           merge_data={"name": "Ann"})  # fmt: skip
    assert "Hi Ann, your offer" in admin_client.get(LIST).content.decode()
    detail = admin_client.get(reverse("outbox:detail", args=[message.pk])).content.decode()
    assert "Hi Ann, your offer" in detail and "%recipient." not in detail


def test_filters_by_account_status_type_and_search(admin_client, make_account, make_message):
    system = make_account(name="System", account_type="system")
    service = make_account(name="Service", account_type="customer_service")
    sent = make_message(system, subject="Password reset")
    failed = make_message(system, status="failed", to=["Zoe@Example.org"])
    other = make_message(service, status="failed", subject="Ticket 42")
    assert rows(admin_client.get(LIST, {"account": system.pk})) == [failed.pk, sent.pk]
    assert rows(admin_client.get(LIST, {"status": "failed"})) == [other.pk, failed.pk]
    assert rows(admin_client.get(LIST, {"type": "customer_service"})) == [other.pk]
    assert rows(admin_client.get(LIST, {"q": "zoe@example"})) == [failed.pk]  # To, any case
    assert rows(admin_client.get(LIST, {"q": "ticket"})) == [other.pk]  # Subject
    both = admin_client.get(LIST, {"status": "failed", "account": system.pk})
    assert rows(both) == [failed.pk]
    assert "No mail matches" in admin_client.get(LIST, {"q": "nothing like it"}).content.decode()


def test_a_bad_filter_is_reported_and_left_out(admin_client, account, make_message):
    message = make_message(account)
    response = admin_client.get(LIST, {"status": "lost", "account": "999999", "q": "\x00"})
    assert response.status_code == 200
    assert rows(response) == [message.pk]
    assert "This filter was left out." in response.content.decode()


def test_paging_keeps_the_filters_and_a_page_past_the_end_is_the_last(
    admin_client, account, make_message
):
    start = timezone.now() - timedelta(days=1)
    messages = [make_message(account, status="failed") for _ in range(53)]
    for index, message in enumerate(messages):  # distinct times, oldest first
        OutboundMessage.objects.filter(pk=message.pk).update(
            created_at=start + timedelta(minutes=index)
        )
    make_message(account, status="sent")  # filtered out
    first = admin_client.get(LIST, {"status": "failed"})
    assert len(rows(first)) == 50
    assert "?status=failed&amp;page=2" in first.content.decode()
    assert "1–50 of 53" in first.content.decode()
    last = admin_client.get(LIST, {"status": "failed", "page": "2"})
    assert rows(last) == [messages[2].pk, messages[1].pk, messages[0].pk]
    assert rows(admin_client.get(LIST, {"status": "failed", "page": "99"})) == rows(last)
    assert len(rows(admin_client.get(LIST, {"page": "abc"}))) == 50  # not a number: page 1


def test_a_huge_log_counts_only_so_far(admin_client, account, make_message, monkeypatch):
    from outbox.services import log

    monkeypatch.setattr(log, "COUNT_LIMIT", 60)
    for _ in range(61):
        make_message(account)
    page = admin_client.get(LIST).content.decode()
    assert "1–50 of more than 60" in page
    assert "filter by account or status" in page


def test_message_page_shows_headers_history_and_no_body(admin_client, account, make_message):
    message = make_message(
        account, status="failed", to=["gone@example.org"], cc=["boss@example.org"],
        subject="Reset your password", last_error="550 5.1.1 Recipient address rejected",
        history=[
            {"outcome": "temporary", "code": 421, "reason": "4.7.0 Try again later"},
            {**REFUSED, "recipients": [{"email": "gone@example.org", "outcome": "refused",
                                        "code": 550, "reason": "5.1.1 No such user"}]},
        ],
    )  # fmt: skip
    page = admin_client.get(reverse("outbox:detail", args=[message.pk])).content.decode()
    for text in ("crm@example.com", "gone@example.org", "boss@example.org",
                 "Reset your password", "Failed", "421", "4.7.0 Try again later",
                 "Recipient address rejected", "5.1.1 No such user", "System Mail"):  # fmt: skip
        assert text in page
    assert page.index("Try again later") < page.index("No such user")  # oldest first
    assert "@example.com&gt;</code>" in page  # the Message-ID delivery gives it
    assert "secret body" not in page
    assert ">Retry</button>" in page


def test_message_page_of_a_sent_message_has_no_retry(admin_client, account, make_message):
    message = make_message(account, history=[{"outcome": "sent", "code": 250, "reason": "OK"}])
    page = admin_client.get(reverse("outbox:detail", args=[message.pk])).content.decode()
    assert ">Retry</button>" not in page


def test_unknown_message_is_404(admin_client):
    assert admin_client.get(reverse("outbox:detail", args=[999999])).status_code == 404
    assert admin_client.post(reverse("outbox:retry", args=[999999])).status_code == 404
    assert admin_client.get(f"{LIST}{10**30}/").status_code == 404  # beyond a bigint


def test_retry_sends_a_failed_message_again_keeping_its_history_and_message_id(
    admin_client, smtp_server, smtp_account_for, make_message, django_capture_on_commit_callbacks
):
    account = smtp_account_for(smtp_server, verified_at=timezone.now())
    message = make_message(account, status="failed", history=[REFUSED, REFUSED],
                           last_error="550 refused")  # fmt: skip
    detail = reverse("outbox:detail", args=[message.pk])
    message_id = admin_client.get(detail).context["message_id"]
    # No broker here: delivery runs in the request, through the real server, which accepts.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("outbox:retry", args=[message.pk]), follow=True)
    assert "is queued again" in response.content.decode()
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.attempts == 1  # the attempt limit started afresh
    assert message.history.filter(code=550).count() == 2  # the earlier attempts are kept
    assert message.history.last().outcome == "sent"
    [received] = smtp_server.messages
    assert received.message["Message-ID"] == message_id
    assert response.context["message_id"] == message_id


def test_retry_of_a_sent_message_changes_nothing(admin_client, account, make_message):
    message = make_message(account)
    response = admin_client.post(reverse("outbox:retry", args=[message.pk]), follow=True)
    assert "not failed, so it was not queued again" in response.content.decode()
    message.refresh_from_db()
    assert message.status == "sent"


def test_retry_failed_confirms_the_count_then_queues(admin_client, make_account, make_message):
    one = make_account(name="One", verified_at=timezone.now())
    two = make_account(name="Two", verified_at=timezone.now())
    for account in (one, one, two):
        make_message(account, status="failed")
    make_message(one, status="sent")
    page = admin_client.get(RETRY_FAILED, {"account": one.pk}).content.decode()
    assert "<strong>2</strong> failed messages of One will be queued again" in page
    assert "Retry 2 messages" in page
    assert OutboundMessage.objects.filter(status="failed").count() == 3  # GET changes nothing
    response = admin_client.post(RETRY_FAILED, {"account": one.pk}, follow=True)
    assert "2 failed messages of “One” queued again." in response.content.decode()
    assert not OutboundMessage.objects.filter(status="failed", account=one, attempts__gt=1)
    assert OutboundMessage.objects.get(account=two).status == "failed"
    everything = admin_client.get(RETRY_FAILED).content.decode()
    assert "<strong>1</strong> failed message will be queued" in everything


def test_retry_failed_with_nothing_failed_says_so(admin_client):
    assert "There is no failed mail" in admin_client.get(RETRY_FAILED).content.decode()
    assert admin_client.get(RETRY_FAILED, {"account": "999999"}).status_code == 404


def test_login_required(client):
    for url in (LIST, reverse("outbox:detail", args=[1]), RETRY_FAILED):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_no_permission_is_403_everywhere(client, make_log_user, account, make_message):
    message = make_message(account, status="failed")
    client.force_login(make_log_user())
    for url in (LIST, reverse("outbox:detail", args=[message.pk]), RETRY_FAILED):
        assert client.get(url).status_code == 403
    assert client.post(reverse("outbox:retry", args=[message.pk])).status_code == 403
    assert client.post(RETRY_FAILED).status_code == 403


def test_view_only_user_sees_no_retry_and_cannot_post(client, make_log_user, account,
                                                      make_message):  # fmt: skip
    message = make_message(account, status="failed")
    client.force_login(make_log_user("view"))
    assert "Retry failed" not in client.get(LIST).content.decode()
    page = client.get(reverse("outbox:detail", args=[message.pk])).content.decode()
    assert ">Retry</button>" not in page
    assert client.post(reverse("outbox:retry", args=[message.pk])).status_code == 403
    assert client.get(RETRY_FAILED).status_code == 403
    assert client.post(RETRY_FAILED).status_code == 403
    message.refresh_from_db()
    assert message.status == "failed"


def test_menu_links_the_mail_log(admin_client):
    page = admin_client.get(reverse("smtp_accounts:list")).content.decode()
    assert f'href="{LIST}">Mail Log</a>' in page


# --- Suppressions -----------------------------------------------------------------------------

SUPPRESSIONS = reverse("outbox:suppressions")


def remove_url(suppression):
    return reverse("outbox:suppression_delete", args=[suppression.pk])


@pytest.fixture
def suppression_user(db):
    """suppression_user("view", "delete") -> a user with just those Suppression permissions."""

    def make(*actions):
        name = "desk-" + "-".join(actions or ["none"])
        user = User.objects.create_user(name, f"{name}@example.com", "pass-123-456")
        codenames = [f"{action}_suppression" for action in actions]
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        return user

    return make


def test_suppressions_empty_state_says_what_the_list_is_for(admin_client):
    page = admin_client.get(SUPPRESSIONS).content.decode()
    assert "No address is suppressed" in page and "bounces for good" in page
    assert f'href="{SUPPRESSIONS}">Suppressions</a>' in page  # the menu entry


def test_suppressions_list_the_columns_with_a_link_to_the_message(admin_client, account,
                                                                  make_message):  # fmt: skip
    message = make_message(account, to=["gone@example.org"], subject="Invoice 7")
    suppressions.suppress("gone@example.org", "bounce", note="550 5.1.1 No such user",
                          message=message)  # fmt: skip
    suppressions.suppress("ann@example.org", "manual", note="asked by phone")

    response = admin_client.get(SUPPRESSIONS)
    page = response.content.decode()

    for column in ("Email", "Reason", "Since", "Message"):
        assert f'<th scope="col">{column}</th>' in page
    assert [s.email for s in response.context["object_list"]] == [
        "ann@example.org", "gone@example.org"]  # fmt: skip
    assert f'<a href="{reverse("outbox:detail", args=[message.pk])}">Invoice 7</a>' in page
    assert "550 5.1.1 No such user" in page and "asked by phone" in page
    assert page.count(">Remove</a>") == 2


def test_suppressions_search_and_paging(admin_client):
    for number in range(55):
        suppressions.suppress(f"user{number:02}@example.org", "manual")
    suppressions.suppress("zoe@other.example", "complaint")

    found = admin_client.get(SUPPRESSIONS, {"q": "ZOE@"})
    assert [s.email for s in found.context["object_list"]] == ["zoe@other.example"]
    assert "No address matches" in admin_client.get(SUPPRESSIONS, {"q": "nobody"}).content.decode()
    last = admin_client.get(SUPPRESSIONS, {"page": "99"})  # past the end: the last page
    assert last.status_code == 200 and len(last.context["object_list"]) == 6


def test_remove_asks_first_then_removes_and_says_so(admin_client):
    suppression, _ = suppressions.suppress("gone@example.org", "bounce")

    confirm = admin_client.get(remove_url(suppression)).content.decode()
    assert "Remove gone@example.org?" in confirm and "another bounce" in confirm
    assert Suppression.objects.exists()
    response = admin_client.post(remove_url(suppression), follow=True)

    assert response.redirect_chain == [(SUPPRESSIONS, 302)]
    assert "gone@example.org is off the suppression list" in response.content.decode()
    assert not Suppression.objects.exists()
    assert admin_client.post(remove_url(suppression)).status_code == 404  # already gone


def test_suppression_permissions(client, suppression_user):
    suppression, _ = suppressions.suppress("gone@example.org", "bounce")
    assert client.get(SUPPRESSIONS).url.startswith("/accounts/login/")
    client.force_login(suppression_user())
    assert client.get(SUPPRESSIONS).status_code == 403
    client.logout()
    client.force_login(suppression_user("view"))
    page = client.get(SUPPRESSIONS).content.decode()
    assert "gone@example.org" in page and ">Remove</a>" not in page
    assert client.post(remove_url(suppression)).status_code == 403
    assert Suppression.objects.exists()
