"""Check connection on the edit page: the diagnostics of `smtp_accounts check`, sending nothing."""

from django.urls import reverse


def test_check_connection_shows_each_step_with_its_time_and_sends_nothing(
        admin_client, smtp_server, smtp_account_for):
    account = smtp_account_for(smtp_server, name="Relay")
    response = admin_client.post(reverse("smtp_accounts:check", args=[account.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Every step passed" in page and "No email was sent." in page
    assert page.count("data-check-step") >= 4 and " ms</span>" in page
    assert smtp_server.messages == []


def test_a_failed_check_says_where_it_stopped(admin_client, smtp_server, smtp_account_for):
    account = smtp_account_for(smtp_server, name="Relay", password="wrong-password")
    page = admin_client.post(reverse("smtp_accounts:check", args=[account.pk])).content.decode()
    assert "The check stopped at" in page and "Failed</span>" in page
    assert "wrong-password" not in page


def test_check_needs_the_change_permission_and_a_post(admin_client, make_user, make_account):
    from django.test import Client

    account = make_account()
    url = reverse("smtp_accounts:check", args=[account.pk])
    assert admin_client.get(url)["Location"] == reverse("smtp_accounts:update",
                                                        args=[account.pk])
    viewer = Client()
    viewer.force_login(make_user("view"))
    assert viewer.post(url).status_code == 403


def test_the_edit_form_has_test_and_check_connection(admin_client, make_account):
    account = make_account()
    page = admin_client.get(reverse("smtp_accounts:update", args=[account.pk])).content.decode()
    assert "data-test-button" in page and "data-test-dialog" in page
    assert f'action="{reverse("smtp_accounts:check", args=[account.pk])}"' in page
    assert ">Check connection</button>" in page
