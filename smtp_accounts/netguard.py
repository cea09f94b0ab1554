"""Which addresses an account may connect to: a guard against server-side request forgery.

An admin types the host of an SMTP account, so without a guard the CRM could be made to talk
to its own database, a cloud metadata service or anything else on the internal network.
Only public (globally routable) addresses are allowed, unless a network listed in
settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS contains the address (e.g. a company relay in
10.0.0.0/8, or 127.0.0.0/8 in tests and development).

Host names are resolved here, once, and the socket connects to the checked IP itself; the
caller keeps the host name for TLS (SNI and certificate checks). The address actually
connected to is checked again, so DNS rebinding cannot slip past. Numeric forms such as
`2130706433` or `0x7f.1` need no special case: getaddrinfo turns them into the addresses
that are then checked.
"""

import ipaddress
import logging
import socket

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

__all__ = [
    "HostNotAllowed",
    "HostUnresolvable",
    "check_address",
    "check_peer",
    "create_connection",
    "resolve",
]

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 that a NAT64 gateway maps onto IPv4


class HostNotAllowed(Exception):
    """The host resolves only to addresses accounts may not reach. `reason` says why."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class HostUnresolvable(Exception):
    """The host name does not resolve. `temporary` is True when DNS may answer later."""

    def __init__(self, reason, temporary=False):
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


def _allowed_networks():
    """The networks of SMTP_ACCOUNTS_ALLOWED_NETWORKS. Raises ImproperlyConfigured if invalid."""
    networks = []
    for entry in settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as err:
            raise ImproperlyConfigured(
                f"SMTP_ACCOUNTS_ALLOWED_NETWORKS has {entry!r}, which is not a network "
                "in CIDR form like 10.0.0.0/8."
            ) from err
    return networks


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 address leads to (mapped, NAT64, 6to4), or None."""
    if address.version != 6:
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _refusal(address):
    """Why `address` may not be reached ("a private address"), or "" when it may."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return ""


def _describe_refusal(address):
    """Why `address` may not be reached ("" when it may), judged by the IPv4 it leads to."""
    # ::ffff:127.0.0.1 reaches 127.0.0.1: an IPv6 wrapper is judged by what it wraps.
    target = _embedded_ipv4(address) or address
    if any(target in network or address in network for network in _allowed_networks()):
        return ""
    return _refusal(target)


def check_address(ip, host=None):
    """Return the ipaddress object for `ip` if accounts may reach it. Raises HostNotAllowed.

    `host` is the name the admin typed, used to word the error.
    """
    address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone like %eth0
    reason = _describe_refusal(address)
    if reason:
        # The address goes to the log only: an admin who may type host names must not be
        # able to map the internal network by reading error messages.
        logger.warning("Refused %s (%s) for an account: %s", host or address, address, reason)
        raise HostNotAllowed(
            f"{_subject(host, address)} {reason}; accounts may not reach it unless "
            "SMTP_ACCOUNTS_ALLOWED_NETWORKS allows it."
        )
    return address


def _subject(host, address):
    """ "smtp.example.com resolves to" / "10.0.0.5 is" / "::ffff:10.0.0.5 leads to 10.0.0.5," """
    target = _embedded_ipv4(address)
    if host and not _is_ip_literal(host):
        return f"{host} resolves to"
    if target:
        return f"{host or address} leads to {target},"
    return f"{host or address} is"


def _is_ip_literal(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host, port):
    """Resolve host:port and return the getaddrinfo entries accounts may connect to.

    Each entry is (family, type, proto, canonname, sockaddr), in the resolver's order.
    Raises HostUnresolvable when the name does not resolve, HostNotAllowed when none of its
    addresses may be reached.
    """
    try:
        entries = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as err:
        temporary = err.errno == socket.EAI_AGAIN
        raise HostUnresolvable(
            f"The name {host} cannot be resolved ({err.strerror}); "
            + ("try again later." if temporary else "check the Host."),
            temporary=temporary,
        ) from err
    allowed, refused = [], None
    for entry in entries:
        try:
            check_address(entry[4][0], host)
        except HostNotAllowed as err:
            refused = refused or err
        else:
            allowed.append(entry)
    if not allowed:
        raise refused
    return allowed


def check_peer(sock, host=None):
    """Check the address `sock` is actually connected to. Raises HostNotAllowed."""
    return check_address(sock.getpeername()[0], host)


def create_connection(host, port, timeout):
    """Return a TCP socket connected to an allowed address of host:port, with `timeout` set.

    Tries each allowed address in turn. Raises HostUnresolvable, HostNotAllowed, or the
    OSError of the last failed attempt (TimeoutError, ConnectionRefusedError …).
    """
    last_error = None
    for family, type_, proto, _canonname, sockaddr in resolve(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            check_peer(sock, host)
        except (OSError, HostNotAllowed) as err:
            sock.close()
            if isinstance(err, HostNotAllowed):
                raise
            last_error = err
        else:
            return sock
    raise last_error
