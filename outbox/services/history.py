"""A message's history: an Attempt row for every try and every later provider event.

On the batch path the rows of a group are written together with the group's sent rows
(one INSERT per group, see deliver.py), so the history costs a campaign little.
"""

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
    """Write `attempts` in one INSERT. Returns them."""
    return Attempt.objects.bulk_create(attempts)
