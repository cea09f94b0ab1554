"""The local dev inbox: the aiosmtpd server, its page, and `manage.py devserver`."""

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from smtp_accounts import devinbox, services
from smtp_accounts.models import Security

DEV_INBOX_URL = "/settings/smtp-accounts/dev-inbox/"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mail(port, subject, body="Hello.", to="someone@example.com"):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "crm@example.com", to, subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(message)


@pytest.fixture
def dev_inbox(settings, tmp_path):
    """The dev inbox running on a free port, writing to a temporary Maildir; DEBUG on."""
    settings.DEBUG = True
    settings.SMTP_ACCOUNTS_DEV_INBOX_DIR = tmp_path / "var" / "dev-inbox"
    settings.SMTP_ACCOUNTS_DEV_INBOX_PORT = free_port()
    inbox = devinbox.start_inbox()
    yield inbox
    inbox.stop()


def test_the_inbox_keeps_what_it_receives_newest_first(dev_inbox):
    mail(dev_inbox.port, "First", to="a@example.com")
    mail(dev_inbox.port, "Second", "Line one.\nLine two.")

    messages = devinbox.read_messages()

    assert [m.subject for m in messages] == ["Second", "First"]
    assert messages[0].text.splitlines() == ["Line one.", "Line two."]
    assert messages[1].envelope_to == "a@example.com"


def test_the_page_shows_the_messages_and_empties_the_inbox(admin_client, dev_inbox):
    mail(dev_inbox.port, "Hello from the test", "Confirmation code: 123456")

    page = admin_client.get(DEV_INBOX_URL).content.decode()
    emptied = admin_client.post(DEV_INBOX_URL, follow=True).content.decode()

    assert "Hello from the test" in page and "Confirmation code: 123456" in page
    assert "Nothing listens on" not in page
    assert "The dev inbox is empty." in emptied and "No messages yet" in emptied
    assert devinbox.read_messages() == []


def test_the_page_says_when_the_inbox_is_not_running(admin_client, settings, tmp_path):
    settings.DEBUG = True
    settings.SMTP_ACCOUNTS_DEV_INBOX_DIR = tmp_path / "missing"
    settings.SMTP_ACCOUNTS_DEV_INBOX_PORT = free_port()

    page = admin_client.get(DEV_INBOX_URL).content.decode()

    assert "Nothing listens on" in page and "make run" in page and "No messages yet" in page


def test_the_page_does_not_exist_without_debug(client, admin_client, settings):
    settings.DEBUG = False

    assert admin_client.get(DEV_INBOX_URL).status_code == 404
    assert client.get(DEV_INBOX_URL).status_code == 404


def test_a_newcomer_can_verify_an_account_through_the_dev_inbox(admin_client, dev_inbox, settings,
                                                                make_account):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    account = make_account(
        host="127.0.0.1", port=dev_inbox.port, security=Security.NONE, username="", password=""
    )
    test = services.request_test_email(account, to="me@example.com")
    services.deliver_test_email(test.pk)

    (message,) = devinbox.read_messages()
    code = next(line for line in message.text.splitlines() if line.startswith("Confirmation"))
    services.confirm_test_email(account, code.rpartition(" ")[2])

    assert "Test email" in message.subject
    assert code in admin_client.get(DEV_INBOX_URL).content.decode()
    account.refresh_from_db()
    assert account.is_verified


def test_devserver_refuses_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG=true"):
        call_command("devserver")


def test_devserver_refuses_a_taken_inbox_port(dev_inbox):
    with pytest.raises(CommandError, match="SMTP_ACCOUNTS_DEV_INBOX_PORT"):
        call_command("devserver", "--noreload")


def wait_for_port(port, process, seconds=30):
    """Wait until something accepts on `port` (False if `process` ends or time runs out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def test_devserver_runs_the_inbox_beside_the_autoreloading_server(tmp_path):
    web_port, inbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "SMTP_ACCOUNTS_DEV_INBOX_PORT": str(inbox_port),
        "SMTP_ACCOUNTS_DEV_INBOX_DIR": str(tmp_path / "dev-inbox"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    manage = Path(django_settings.BASE_DIR) / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "devserver", f"127.0.0.1:{web_port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        # The reloader's child runs the web server; it must not try to take the inbox's port.
        serving = wait_for_port(web_port, process) and wait_for_port(inbox_port, process)
        with smtplib.SMTP("127.0.0.1", inbox_port) as client:
            assert client.noop()[0] == 250
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert serving, output
    assert f"Dev inbox: SMTP on 127.0.0.1:{inbox_port}" in output
    assert "Error" not in output
