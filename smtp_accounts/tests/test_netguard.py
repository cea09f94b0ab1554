"""The SSRF guard: which addresses accounts may reach, checked before and after connecting."""

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from smtp_accounts import netguard


@pytest.fixture(autouse=True)
def _no_allow_list(settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = []


@pytest.fixture
def listener():
    """A listening socket on 127.0.0.1 that never accepts by itself."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(0)
        yield sock


def pending_connection(listener):
    """True when a client connected to `listener` (the kernel completed the handshake)."""
    try:
        conn, _addr = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_loopback_is_refused_and_the_error_names_the_setting():
    with pytest.raises(netguard.HostNotAllowed) as refused:
        netguard.resolve("localhost", 25)

    assert refused.value.reason == (
        "localhost resolves to a loopback address; accounts may not reach it "
        "unless SMTP_ACCOUNTS_ALLOWED_NETWORKS allows it."
    )


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("2130706433", "2130706433 resolves to a loopback address"),
        ("0x7f.1", "0x7f.1 resolves to a loopback address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 leads to 127.0.0.1, a loopback address"),
        ("64:ff9b::a00:5", "64:ff9b::a00:5 leads to 10.0.0.5, a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("::", ":: is an unspecified address"),
        ("240.0.0.1", "240.0.0.1 is a reserved address"),
        ("fd00::1", "fd00::1 is a private address"),
        ("::1", "::1 is a loopback address"),
    ],
)
def test_non_public_addresses_are_refused(host, says):
    with pytest.raises(netguard.HostNotAllowed) as refused:
        netguard.resolve(host, 587)

    assert refused.value.reason.startswith(says + ";")


def test_public_addresses_are_allowed():
    [entry] = netguard.resolve("8.8.8.8", 587)

    assert entry[4][:2] == ("8.8.8.8", 587)


def test_a_listed_network_allows_its_addresses(settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]

    assert netguard.resolve("10.1.2.3", 25)[0][4][0] == "10.1.2.3"
    assert netguard.resolve("2130706433", 25)[0][4][0] == "127.0.0.1"
    assert netguard.resolve("::ffff:127.0.0.1", 25)[0][4][0] == "::ffff:127.0.0.1"
    with pytest.raises(netguard.HostNotAllowed):
        netguard.resolve("192.168.1.1", 25)


def test_an_invalid_allow_list_names_the_setting(settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = ["10.0.0.0/33"]

    with pytest.raises(ImproperlyConfigured) as invalid:
        netguard.resolve("10.0.0.5", 25)

    assert "SMTP_ACCOUNTS_ALLOWED_NETWORKS has '10.0.0.0/33'" in str(invalid.value)


def test_a_name_that_does_not_resolve():
    with pytest.raises(netguard.HostUnresolvable) as unresolvable:
        netguard.resolve("no-such-host.invalid", 25)

    assert unresolvable.value.reason.startswith("The name no-such-host.invalid cannot be resolved")


def test_no_connection_is_opened_to_a_refused_address(listener):
    port = listener.getsockname()[1]

    with pytest.raises(netguard.HostNotAllowed):
        netguard.create_connection("127.0.0.1", port, timeout=1)

    assert not pending_connection(listener)


def test_create_connection_goes_to_the_checked_address(listener, settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    port = listener.getsockname()[1]

    with netguard.create_connection("localhost", port, timeout=1) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
        assert sock.gettimeout() == 1
        assert pending_connection(listener)


def test_the_peer_is_checked_after_connecting(listener):
    # As after DNS rebinding: the name looked public, the socket reached loopback.
    with (
        socket.create_connection(listener.getsockname()) as sock,
        pytest.raises(netguard.HostNotAllowed) as refused,
    ):
        netguard.check_peer(sock, "mail.example.com")

    assert refused.value.reason.startswith(
        "mail.example.com resolves to a loopback address"
    )
