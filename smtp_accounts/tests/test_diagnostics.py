"""check_account against real servers: aiosmtpd in its fault modes and the Mailgun-like API."""

import socket

import pytest
from cryptography.fernet import Fernet

from smtp_accounts.services.diagnostics import check_account

SMTP_STEPS = ["DNS", "TCP", "TLS", "EHLO", "login"]


def names(result):
    return [step.name for step in result.steps]


def details(result):
    return " | ".join(step.detail for step in result.steps)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP ------------------------------------------------------------------------------------


def test_a_good_starttls_server_passes_every_step_and_receives_nothing(
    smtp_server, smtp_account_for
):
    account = smtp_account_for(smtp_server)
    result = check_account(account)
    assert result.ok and result.failure is None
    assert names(result) == SMTP_STEPS
    dns, tcp, tls, ehlo, login = result.steps
    assert dns.detail == "127.0.0.1 -> 127.0.0.1"
    assert tcp.detail.startswith(f"connected to 127.0.0.1 port {smtp_server.port}; server says 220")
    assert "certificate for localhost, expires in 1 day" in tls.detail
    assert "AUTH LOGIN PLAIN" in ehlo.detail and "STARTTLS" not in ehlo.detail  # after TLS
    assert login.detail == f"logged in as {smtp_server.username}"
    assert all(step.seconds >= 0 for step in result.steps)
    assert smtp_server.logins == [smtp_server.username] and smtp_server.messages == []
    assert smtp_server.password not in details(result)


def test_implicit_tls_reads_the_greeting_after_the_handshake(smtp_ssl_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_ssl_server))
    assert result.ok, details(result)
    assert "server says 220" in result.steps[2].detail


def test_a_relay_without_login_skips_the_login(smtp_plain_server, smtp_account_for):
    account = smtp_account_for(smtp_plain_server, username="", password="")
    result = check_account(account)
    assert result.ok, details(result)
    assert result.steps[2].detail.startswith("not encrypted")
    assert result.steps[4].detail.startswith("skipped: no User set")


def test_a_wrong_password_stops_at_login_with_the_535(smtp_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_server, password="not-the-password"))
    assert names(result) == SMTP_STEPS and not result.ok
    assert result.failure.name == "login"
    assert "rejected the login (535" in result.failure.detail
    assert "check the User and Password" in result.failure.detail
    assert "not-the-password" not in details(result)


def test_an_untrusted_certificate_stops_at_tls(smtp_untrusted_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_untrusted_server))
    assert names(result) == ["DNS", "TCP", "TLS"]
    assert "is not trusted" in result.failure.detail
    assert "SMTP_ACCOUNTS_CA_FILE" in result.failure.detail
    assert smtp_untrusted_server.logins == []


def test_a_closed_port_stops_at_tcp(smtp_test_settings, smtp_account_for, smtp_server,
                                    closed_port):
    result = check_account(smtp_account_for(smtp_server, port=closed_port))
    assert names(result) == ["DNS", "TCP"]
    assert f"127.0.0.1:{closed_port} refused the connection" in result.failure.detail


def test_a_server_that_is_not_smtp_stops_at_tcp(smtp_greeting_server, smtp_account_for):
    server = smtp_greeting_server("HTTP/1.1 400 Bad Request")
    result = check_account(smtp_account_for(server))
    assert result.failure.name == "TCP"
    assert "did not answer like a mail (SMTP) server" in result.failure.detail


def test_a_busy_server_says_try_later(smtp_greeting_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_greeting_server("421 4.3.2 Busy")))
    assert "is not accepting mail right now (421 4.3.2 Busy)" in result.failure.detail


def test_a_silent_server_times_out(smtp_greeting_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_greeting_server(None)))
    assert result.failure.name == "TCP" and "Timed out after 1 s" in result.failure.detail


def test_a_host_netguard_refuses_stops_at_dns(smtp_server, smtp_account_for, settings):
    account = smtp_account_for(smtp_server)
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = []
    result = check_account(account)
    assert names(result) == ["DNS"]
    assert "a loopback address" in result.failure.detail
    assert smtp_server.connections == 0


def test_a_name_that_does_not_resolve_stops_at_dns(smtp_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_server, host="nowhere.invalid"))
    assert names(result) == ["DNS"] and "cannot be resolved" in result.failure.detail


def test_a_password_no_key_opens_stops_at_login(smtp_server, smtp_account_for, settings):
    account = smtp_account_for(smtp_server)
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    result = check_account(account)
    assert result.failure.name == "login" and "re-enter the password" in result.failure.detail


# --- Mailgun ---------------------------------------------------------------------------------


def test_mailgun_key_and_domain_are_checked(mailgun_server, mailgun_account_for):
    result = check_account(mailgun_account_for(mailgun_server))
    assert result.ok, details(result)
    assert names(result) == ["API key", "Mailgun API", "domain"]
    assert result.steps[2].detail == "mg.example.com is known to Mailgun (state: active)"
    [request] = mailgun_server.requests
    assert (request.method, request.path, request.auth_ok) == (
        "GET", "/v3/domains/mg.example.com", True
    )


def test_mailgun_without_a_key(mailgun_server, mailgun_account_for, settings):
    settings.MAILGUN_API_KEY = ""
    result = check_account(mailgun_account_for(mailgun_server))
    assert names(result) == ["API key"] and "MAILGUN_API_KEY is not set" in details(result)
    assert mailgun_server.requests == []


def test_mailgun_rejects_a_wrong_key(mailgun_server, mailgun_account_for, settings):
    settings.MAILGUN_API_KEY = "key-wrong"
    result = check_account(mailgun_account_for(mailgun_server))
    assert result.failure.name == "Mailgun API"
    assert "Mailgun rejected the API key (401)" in result.failure.detail
    assert "key-wrong" not in details(result)


def test_mailgun_does_not_know_the_domain(mailgun_server, mailgun_account_for):
    account = mailgun_account_for(mailgun_server, domain="mg.unknown.com")
    result = check_account(account)
    assert result.failure.name == "domain"
    assert "Mailgun does not know the domain mg.unknown.com" in result.failure.detail


def test_mailgun_server_errors_say_try_again(mailgun_server, mailgun_account_for):
    mailgun_server.fail(500)
    result = check_account(mailgun_account_for(mailgun_server))
    assert result.failure.name == "Mailgun API" and "try again" in result.failure.detail


def test_a_slow_mailgun_times_out(mailgun_slow, mailgun_account_for):
    result = check_account(mailgun_account_for(mailgun_slow))
    assert "Timed out after 1 s talking to Mailgun" in result.failure.detail


def test_an_unreachable_mailgun_url(mailgun_server, mailgun_account_for, settings, closed_port):
    settings.MAILGUN_API_URL = f"http://127.0.0.1:{closed_port}/v3"
    result = check_account(mailgun_account_for(mailgun_server))
    assert "Could not reach Mailgun" in result.failure.detail


def test_ssl_against_a_starttls_port_fails_the_handshake(smtp_server, smtp_account_for):
    result = check_account(smtp_account_for(smtp_server, security="ssl"))
    assert result.failure.name == "TLS"
    assert f"The TLS handshake with 127.0.0.1:{smtp_server.port} failed" in result.failure.detail


def test_a_tarpit_cannot_hold_the_check_past_the_overall_deadline(
    smtp_tarpit_server, smtp_account_for
):
    # Defect 9 for `smtp_accounts check`: 40 s and more against a trickled greeting.
    result = check_account(smtp_account_for(smtp_tarpit_server))

    assert result.failure.name == "TCP"
    assert "did not finish answering within 0.9 s" in result.failure.detail
