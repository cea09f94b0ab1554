import pytest
from cryptography.fernet import Fernet

from smtp_accounts import crypto


def test_round_trip_and_token_is_not_plaintext():
    token = crypto.encrypt("hunter2")
    assert "hunter2" not in token
    assert crypto.decrypt(token) == "hunter2"


def test_old_key_still_decrypts_after_a_new_key_is_added(settings):
    old = settings.FERNET_KEYS[0]
    token = crypto.encrypt("hunter2")
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), old]
    assert crypto.decrypt(token) == "hunter2"
    assert not crypto.is_current(token)
    assert crypto.is_current(crypto.rotate(token))


def test_token_no_key_opens_says_reenter_the_password(settings):
    token = crypto.encrypt("hunter2")
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.UndecryptableSecret, match="re-enter the password"):
        crypto.decrypt(token)
