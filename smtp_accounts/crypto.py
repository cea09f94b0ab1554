"""Encryption of account secrets at rest: MultiFernet over `settings.FERNET_KEYS`.

The first key encrypts; every key decrypts, so keys can be rotated without downtime
(add the new key first, run `manage.py rotate_fernet_keys`, then drop the old key).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables


class UndecryptableSecret(Exception):
    """No key in FERNET_KEYS opens this token: the secret must be typed again."""


@lru_cache(maxsize=4)
def _fernet(keys):
    return MultiFernet([Fernet(key) for key in keys])


def get_fernet():
    """The MultiFernet for the keys in force (cached per key list, so overrides work)."""
    return _fernet(tuple(settings.FERNET_KEYS))


@sensitive_variables()
def encrypt(plaintext):
    """Return a Fernet token (str) for `plaintext`, encrypted with the first key."""
    return get_fernet().encrypt(plaintext.encode()).decode()


@sensitive_variables()
def decrypt(token):
    """Return the plaintext of `token`. Raises UndecryptableSecret when no key opens it."""
    try:
        return get_fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError, TypeError) as err:
        raise UndecryptableSecret(
            "The stored password cannot be decrypted with the keys in FERNET_KEYS; "
            "re-enter the password."
        ) from err


def rotate(token):
    """Return `token` re-encrypted with the first key. Raises UndecryptableSecret."""
    try:
        return get_fernet().rotate(token.encode()).decode()
    except (InvalidToken, ValueError, TypeError) as err:
        raise UndecryptableSecret("No key in FERNET_KEYS opens this secret.") from err


def is_current(token):
    """True when `token` was encrypted with the first (current) key."""
    try:
        Fernet(settings.FERNET_KEYS[0]).decrypt(token.encode())
    except (InvalidToken, ValueError, TypeError):
        return False
    return True
