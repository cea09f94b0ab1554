"""A message's history: an Attempt row for every try and every later provider event.

On the batch path the rows of a group are written together with the group's sent rows
(one INSERT per group, see deliver.py), so the history costs a campaign little.
"""

from django.db import connection

from ..models import Attempt

Outcome = Attempt.Outcome


def attempt(message, outcome, *, code=None, reason="", recipients=()):
    """An unsaved Attempt of `message` through its account (save it, or pass it to
    record_attempts)."""
    account = message.account
    return Attempt(
        message=message, account=account, account_name=account.name if account else "",
        outcome=outcome, code=code, reason=reason, recipients=list(recipients),
    )  # fmt: skip


def sent_attempt(message, delivery):
    """The Attempt for a Delivery: sent, with the server's reply and each recipient."""
    refused = delivery.refused
    reason = refusal_note(refused) if refused else delivery.reply
    return attempt(message, Outcome.SENT, code=delivery.code, reason=reason,
                   recipients=delivery.recipients)  # fmt: skip


def failed_attempt(message, error):
    """The Attempt for a SendError or ConfigurationError (outcome = its kind)."""
    outcome = getattr(error, "kind", "") or Outcome.PERMANENT
    return attempt(message, outcome, code=getattr(error, "code", None), reason=error.reason,
                   recipients=getattr(error, "recipients", ()))  # fmt: skip


def refusal_note(refused):
    """One sentence naming each refused recipient with the server's code and reply."""
    parts = [f"{entry['email']} ({entry['code']} {entry['reason']})".replace(" None", "")
             for entry in refused]  # fmt: skip
    return f"Sent, but the server refused {len(refused)} recipient(s): {'; '.join(parts)}."


def record_attempts(attempts):
    """Write `attempts` in one INSERT ... VALUES. Returns them (without their ids).

    Not bulk_create(): on PostgreSQL, Django 5.2 sends the rows as UNNEST arrays, whose
    literals psycopg builds in Python, about twice the CPU of this for a group of 20
    (bench/README.md). The columns and values are Django's own, from the model's fields."""
    if not attempts:
        return attempts
    fields = [field for field in Attempt._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(fields))})"
    # Only quoted names and placeholders in the SQL; every value is a parameter.
    sql = (f"INSERT INTO {quote(Attempt._meta.db_table)} "  # noqa: S608
           f"({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES {', '.join([row] * len(attempts))}")  # fmt: skip
    params = [field.get_db_prep_save(field.pre_save(attempt, True), connection)
              for attempt in attempts for field in fields]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return attempts
