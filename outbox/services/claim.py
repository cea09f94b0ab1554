"""Claims: conditional updates, so one worker at a time sends a row, and only the claim that
holds a row may finish it (a late worker cannot overwrite a newer attempt)."""

import uuid

from django.db import connection, transaction
from django.db.models import CharField, F, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone

from smtp_accounts.models import Provider, SmtpAccount

from .. import policy
from ..models import OutboundMessage

Status = OutboundMessage.Status


def claim_message(message_id):
    """Claim one due row (queued -> sending, leased). Returns it with its account, or None
    when it is not queued and due (sent, being sent, failed, or waiting for its retry)."""
    token = uuid.uuid4().hex
    due = OutboundMessage.objects.due().filter(pk=message_id)
    if not due.update(**_claim_fields(token)):
        return None
    return OutboundMessage.objects.select_related("account").get(pk=message_id)


def batch_size(account_id):
    """Rows one batch claim of the account takes: MAILGUN_BATCH_SIZE for an external account
    (one Mailgun call takes that many recipients), else BATCH_SIZE (one SMTP connection)."""
    external = SmtpAccount.objects.filter(pk=account_id, provider=Provider.EXTERNAL).exists()
    return policy.MAILGUN_BATCH_SIZE if external else policy.BATCH_SIZE


def claim_batch(account_id, size=None):
    """Claim up to `size` (default batch_size) due rows of one account, oldest first.
    Returns them (maybe [])."""
    size = size or batch_size(account_id)
    token = uuid.uuid4().hex
    due = OutboundMessage.objects.due().filter(account_id=account_id).order_by("pk")
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            # PostgreSQL: lock the rows first, so concurrent claimers take different ones.
            # (As a subquery of the UPDATE, a LIMIT'ed SKIP LOCKED select may run more than
            # once and claim more than BATCH_SIZE rows.)
            locked = due.select_for_update(skip_locked=True)
            ids = list(locked.values_list("pk", flat=True)[:size])
        else:
            ids = due.values("pk")[:size]  # SQLite: one statement, one writer
        OutboundMessage.objects.filter(pk__in=ids, status=Status.QUEUED).update(
            **_claim_fields(token)
        )
    claimed = list(OutboundMessage.objects.filter(claim_token=token).order_by("pk"))
    if claimed:
        # One account for the batch, not a copy per row (select_related builds one a row).
        account = SmtpAccount.objects.filter(pk=account_id).first()
        for message in claimed:
            message.account = account
    return claimed


def mark_sent(token, provider_ids, errors=None):
    """Record rows of the claim `token` as sent. `provider_ids` maps row id -> provider
    message id, `errors` row id -> a note for last_error (a refused recipient). Returns the
    number recorded; rows another claim took meanwhile are left alone."""
    now, errors = timezone.now(), errors or {}
    distinct = set(provider_ids.values())
    # Rows of one Mailgun batch call share their provider id: one value, not a CASE.
    provider_id = Value(distinct.pop()) if len(distinct) == 1 else _by_row(provider_ids)
    return OutboundMessage.objects.filter(pk__in=provider_ids, claim_token=token).update(
        status=Status.SENT, sent_at=now, updated_at=now, lease_until=None, error_kind="",
        provider_message_id=provider_id,
        last_error=_by_row(errors, default="") if errors else "",
    )  # fmt: skip


def _by_row(values, default=None):
    """An expression giving each row its value from `values` (row id -> text): one CASE.

    Written as one RawSQL rather than Case(When(pk=…)…): Django resolves and copies every
    When, about 150 µs per row of a group (bench/README.md), for the same SQL."""
    pk = connection.ops.quote_name(OutboundMessage._meta.pk.column)
    whens = " ".join(["WHEN %s THEN %s"] * len(values))
    params = [item for pair in values.items() for item in pair]
    if default is not None:
        whens, params = f"{whens} ELSE %s", [*params, default]
    # Only placeholders and the quoted column name are in the SQL; the values are params.
    return RawSQL(f"CASE {pk} {whens} END", params, output_field=CharField())  # noqa: S611


def finish(message, **fields):
    """End a claim with `fields` (status, error …), unless another claim took the row.
    Returns 1 when recorded, 0 when the claim no longer holds the row."""
    held = OutboundMessage.objects.filter(pk=message.pk, claim_token=message.claim_token)
    return held.update(lease_until=None, updated_at=timezone.now(), **fields)


def put_back(messages):
    """Return claimed, untried rows to the queue, as if never claimed (a task is enqueued
    for them at once, so they are marked enqueued)."""
    now = timezone.now()
    return OutboundMessage.objects.filter(
        pk__in=[message.pk for message in messages], claim_token=messages[0].claim_token
    ).update(
        status=Status.QUEUED, lease_until=None, attempts=F("attempts") - 1, claim_token="",
        next_attempt_at=now, enqueued_at=now,
    )  # fmt: skip


def _claim_fields(token):
    now = timezone.now()
    return {
        "status": Status.SENDING,
        "claim_token": token,
        "lease_until": now + policy.LEASE,
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }
