"""Per-recipient placeholders: `%recipient.NAME%` in a subject, a text or an HTML body.

One syntax for both paths. It is Mailgun's own: a Mailgun batch call sends the template and
Mailgun fills it from `recipient-variables`; the SMTP path fills the same text here, before
the message is built. A name given no value becomes the empty string on both paths (Mailgun
would leave an unknown placeholder as written, so the Mailgun sender sends every name with
"" as its default). Values are HTML-escaped in the HTML body, on both paths.
"""

import re
from html import escape

PLACEHOLDER = re.compile(r"%recipient\.([A-Za-z0-9_-]+)%")
NAME = re.compile(r"[A-Za-z0-9_-]+")


def fill(text, values, *, html=False):
    """`text` with every placeholder replaced by its value in `values` ("" when missing);
    values are HTML-escaped when `html`."""
    if "%recipient." not in text:
        return text  # most mail: no regex pass
    if html:
        return PLACEHOLDER.sub(lambda match: escape(str(values.get(match[1], ""))), text)
    return PLACEHOLDER.sub(lambda match: str(values.get(match[1], "")), text)


def names(*texts):
    """The placeholder names used in `texts`, as a set."""
    return {name for text in texts if "%recipient." in text for name in PLACEHOLDER.findall(text)}


def clean_values(values):
    """`values` (a dict name -> value, or None) as {name: str}. None becomes "".

    Raises ValueError for something that is not a dict, or a name a placeholder cannot
    spell (letters, digits, "_" and "-")."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError("merge_data must be a dict of name -> value.")
    for name in values:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(
                f"merge_data name {name!r} cannot be a placeholder: use letters, digits, _ or -."
            )
    return {name: "" if value is None else str(value) for name, value in values.items()}
