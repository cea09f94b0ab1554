import pytest
from django.core.exceptions import ValidationError

from smtp_accounts.validators import normalize_domain, normalize_hostname, validate_header_safe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SMTP.Gmail.com", "smtp.gmail.com"),
        ("smtp.example.com.", "smtp.example.com"),
        ("mail.bücher.example", "mail.xn--bcher-kva.example"),
        ("192.0.2.10", "192.0.2.10"),
        ("[2001:db8::1]", "2001:db8::1"),
    ],
)
def test_hosts_are_normalized(value, expected):
    assert normalize_hostname(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Enter the server's host name"),
        ("smtps://mail.example.com", "without a scheme"),
        ("mail.example.com/x", "without a path"),
        ("mail.example.com:25", "Port field"),
        ("mail example.com", "cannot contain spaces"),
        ("mail.exa\r\nmple.com", "cannot contain spaces"),
        ("-bad-.example.com", "valid host name"),
        ("a" * 64 + ".example.com", "valid host name"),
    ],
)
def test_bad_hosts_say_what_is_wrong(value, message):
    with pytest.raises(ValidationError, match=message):
        normalize_hostname(value)


def test_a_domain_needs_a_dot():
    assert normalize_domain("MG.Example.com") == "mg.example.com"
    with pytest.raises(ValidationError, match="domain part"):
        normalize_domain("localhost")


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "a\x7fb", "a\tb"])
def test_header_values_refuse_control_characters(value):
    with pytest.raises(ValidationError, match="line breaks and control characters"):
        validate_header_safe(value)


def test_plain_header_values_pass():
    validate_header_safe("Démo Support, Inc.")
