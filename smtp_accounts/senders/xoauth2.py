"""SMTP `AUTH XOAUTH2`: logging in with an OAuth access token (Google, Microsoft 365).

The client sends base64("user=" + user + "\\x01auth=Bearer " + token + "\\x01\\x01"). The
server answers 235, or 334 with a base64 JSON error, to which the client sends an empty line
and the server then answers 535. Used by the SMTP sender and the connection diagnostics.
"""

import base64
import binascii
import json
import smtplib

from django.views.decorators.debug import sensitive_variables

__all__ = ["XOAuth2Refused", "authenticate", "explain"]


class XOAuth2Refused(smtplib.SMTPAuthenticationError):
    """The server refused the token; `details` is the JSON error of its 334 ({} if none)."""

    def __init__(self, code, resp, details):
        super().__init__(code, resp)
        self.details = details


@sensitive_variables("token")
def authenticate(smtp, user, token):
    """Log the connected `smtp` in as `user` with access `token`; return (235, reply).

    Raises XOAuth2Refused, SMTPNotSupportedError when the server offers no XOAUTH2, or
    another smtplib error / OSError from the connection.
    """
    # Unlike login(), auth() does not say EHLO again after STARTTLS: without this the
    # server answers 503 and the next MAIL gets 530.
    smtp.ehlo_or_helo_if_needed()
    mechanisms = (smtp.esmtp_features.get("auth") or "").upper().split()
    if "XOAUTH2" not in mechanisms:
        raise smtplib.SMTPNotSupportedError(
            "the server does not offer AUTH XOAUTH2 (OAuth sign-in)")
    if not user.isascii():
        raise smtplib.SMTPException("XOAUTH2 needs a User in plain ASCII letters")
    challenges = []

    def answer(challenge=None):
        if challenge is None:
            return f"user={user}\x01auth=Bearer {token}\x01\x01"
        challenges.append(challenge)
        return ""  # the empty line that ends a refused exchange

    try:
        code, reply = smtp.auth("XOAUTH2", answer)
    except smtplib.SMTPAuthenticationError as err:
        raise XOAuth2Refused(err.smtp_code, err.smtp_error, _decode(challenges)) from err
    if code != 235:  # smtplib also returns on 503 ("already authenticated")
        raise XOAuth2Refused(code, reply, {})
    return code, reply


def _decode(challenges):
    """The server's JSON error (already base64-decoded by smtplib), or {}."""
    for challenge in challenges:
        try:
            details = json.loads(challenge)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            try:  # some servers encode twice
                details = json.loads(base64.b64decode(challenge))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                continue
        if isinstance(details, dict):
            return details
    return {}


def explain(details, account):
    """What a refused XOAUTH2 login means for `account`, and what to do about it."""
    status = str(details.get("status", ""))
    scope = details.get("scope", "")
    if status == "401":
        return ("the access token expired or was revoked; the next try renews it, and if "
                "this repeats, sign in again")
    if status == "400":
        who = f" (signed in as {account.signed_in_as})" if account.signed_in_as else ""
        return (f"the token does not belong to the User {account.username}{who}: set User "
                "to the mailbox that signed in, or sign in again as that mailbox")
    if status == "403" or scope:
        return (f"the sign-in lacks the permission to send mail{f' ({scope})' if scope else ''}: "
                "sign in again and allow the CRM to send mail")
    return ("check that the User is the mailbox that signed in and that SMTP sending is "
            "allowed for it (Microsoft 365: Authenticated SMTP on the mailbox), then sign in again")
