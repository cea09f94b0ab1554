"""The account form's routing fields: Priority and the sending limits, as a user posts them."""

import pytest
from django.urls import reverse

from smtp_accounts.models import SmtpAccount
from smtp_accounts.tests.test_views_accounts import CREATE, INTERNAL


def test_a_post_without_routing_fields_keeps_todays_behaviour(admin_client):
    assert admin_client.post(CREATE, INTERNAL).status_code == 302
    account = SmtpAccount.objects.get(name="Support desk")
    assert account.priority == 10
    assert (account.max_per_minute, account.max_per_hour, account.max_per_day) == (None,) * 3


def test_routing_fields_are_saved(admin_client):
    data = {**INTERNAL, "priority": "2", "max_per_minute": "30", "max_per_hour": "",
            "max_per_day": "2000"}
    assert admin_client.post(CREATE, data).status_code == 302
    account = SmtpAccount.objects.get(name="Support desk")
    assert (account.priority, account.max_per_minute, account.max_per_day) == (2, 30, 2000)
    assert account.max_per_hour is None
    assert account.limits == {60: 30, 86400: 2000}


def test_an_edit_that_leaves_the_fields_out_keeps_them(admin_client, make_account):
    account = make_account(name="Desk", priority=3, max_per_day=500)
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "name": "Desk", "host": account.host, "username": account.username,
            "password": ""}
    assert admin_client.post(url, data).status_code == 302
    account.refresh_from_db()
    assert (account.priority, account.max_per_day) == (3, 500)


def test_a_blank_limit_on_edit_clears_it(admin_client, make_account):
    account = make_account(name="Desk", max_per_day=500)
    url = reverse("smtp_accounts:update", args=[account.pk])
    data = {**INTERNAL, "name": "Desk", "host": account.host, "username": account.username,
            "password": "", "max_per_day": ""}
    assert admin_client.post(url, data).status_code == 302
    account.refresh_from_db()
    assert account.max_per_day is None


@pytest.mark.parametrize("field, value", [("max_per_minute", "0"), ("max_per_day", "-5"),
                                          ("priority", "first"), ("max_per_hour", "1.5")])
def test_a_bad_number_is_an_error_beside_the_field(admin_client, field, value):
    response = admin_client.post(CREATE, {**INTERNAL, field: value})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    if value == "0":
        assert "Enter 1 or more, or leave it blank for no limit." in response.content.decode()
    assert not SmtpAccount.objects.exists()
    assert "app-password-1" not in response.content.decode()


@pytest.mark.parametrize("preset, limits", [("gmail", (None, 500, None)),
                                            ("outlook", (30, 10000, 3)),
                                            ("yahoo", (None, None, None))])
def test_a_preset_fills_the_providers_limits(admin_client, preset, limits):
    data = {**INTERNAL, "preset": preset, "host": "", "port": ""}
    assert admin_client.post(CREATE, data).status_code == 302
    account = SmtpAccount.objects.get(name="Support desk")
    assert (account.max_per_minute, account.max_per_day, account.max_connections) == limits


def test_a_limit_typed_with_a_preset_wins(admin_client):
    data = {**INTERNAL, "preset": "gmail", "host": "", "port": "", "max_per_day": "2000"}
    assert admin_client.post(CREATE, data).status_code == 302
    assert SmtpAccount.objects.get(name="Support desk").max_per_day == 2000


def test_the_page_labels_and_explains_each_field(admin_client):
    page = admin_client.get(CREATE).content.decode()
    for label in ("Priority", "Messages per minute", "Messages per hour", "Messages per day"):
        assert f">{label}<" in page
    assert "Lower sends first" in page and "Blank = no limit" in page
    assert '"max_per_day": 500' in page  # the presets' limits reach the page's script
