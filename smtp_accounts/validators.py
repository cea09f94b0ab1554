"""Field validators shared by the model, the forms and the commands."""

import ipaddress
import re

from django.core.exceptions import ValidationError

# Anything below 0x20 (CR and LF included) or DEL would let a value break out of a mail header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def validate_header_safe(value):
    """Refuse control characters (CR, LF, NUL …) in values that end up in mail headers."""
    if value and _CONTROL.search(str(value)):
        raise ValidationError(
            "Remove line breaks and control characters from this field.", code="control_chars"
        )


def normalize_hostname(value):
    """Return `value` as a bare lower-case host name (IDN as punycode) or IP address.

    Raises ValidationError naming what is wrong: a scheme, a path, a port, spaces.
    """
    value = (value or "").strip()
    if not value:
        raise ValidationError("Enter the server's host name, e.g. smtp.gmail.com.", code="required")
    if "://" in value:
        raise ValidationError(
            "Enter only the host name, without a scheme like smtp:// or https://.", code="scheme"
        )
    if any(ch.isspace() for ch in value) or _CONTROL.search(value):
        raise ValidationError("A host name cannot contain spaces.", code="spaces")
    if "/" in value or "?" in value or "#" in value or "@" in value:
        raise ValidationError("Enter only the host name, without a path.", code="path")
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    if ":" in value:
        raise ValidationError("Put the port in the Port field, not in the host name.", code="port")
    try:
        ascii_name = value.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValidationError("Enter a valid host name.", code="invalid") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValidationError("Enter a valid host name, e.g. smtp.example.com.", code="invalid")
    return ascii_name


def normalize_domain(value):
    """Return a sending domain as punycode; it must have at least one dot."""
    name = normalize_hostname(value)
    if "." not in name or name.replace(".", "").isdigit() or ":" in name:
        raise ValidationError(
            "Enter the domain part of the address, e.g. example.com.", code="domain"
        )
    return name
