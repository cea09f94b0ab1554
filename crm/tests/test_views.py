import pytest
from django.urls import reverse


def test_home_sends_a_logged_in_admin_to_smtp_accounts(admin_client):
    response = admin_client.get("/")
    assert response["Location"] == reverse("smtp_accounts:list")


def test_healthz_reports_database_and_broker_without_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    # The tests run without a broker: said out loud, mail is sent inside the request.
    assert response.json() == {"database": "ok", "broker": "inline", "status": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings):
    # A closed port on loopback: the check must answer quickly and say which part is down.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from crm.celery import app

    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = "memory://"
    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"
    assert "redis" not in response.content.decode().lower()


def test_left_menu_has_system_settings_and_smtp_accounts(admin_client):
    page = admin_client.get(reverse("smtp_accounts:list")).content.decode()
    assert "System Settings" in page
    assert f'href="{reverse("smtp_accounts:list")}">SMTP Accounts</a>' in page


def test_healthz_answers_plain_http_probes_behind_an_ssl_redirect(settings, db):
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new handler, so SecurityMiddleware reads the setting
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301
