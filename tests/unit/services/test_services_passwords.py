"""bcrypt hashing, and the dummy check that keeps unknown phones as slow as wrong passwords."""

from __future__ import annotations

import bcrypt
import pytest

from services.user import passwords
from services.user.passwords import PasswordHasher


@pytest.fixture(scope="module")
def hasher():
    return PasswordHasher(cost=4)


def test_right_password_verifies_and_wrong_does_not(hasher):
    stored = hasher.hash("correct horse battery")
    assert stored.startswith("$2b$04$")
    assert hasher.verify("correct horse battery", stored)
    assert not hasher.verify("correct horse battery!", stored)


def test_hashes_are_salted(hasher):
    assert hasher.hash("same password") != hasher.hash("same password")


def test_long_unicode_passwords_keep_every_character(hasher):
    # 128 characters of 4-byte UTF-8 is 512 bytes; raw bcrypt would refuse (or cut at 72).
    base = "😀" * 127
    stored = hasher.hash(base + "a")
    assert hasher.verify(base + "a", stored)
    assert not hasher.verify(base + "b", stored)


def test_unknown_user_runs_bcrypt_against_the_dummy_hash(hasher, monkeypatch):
    checked = []
    real_checkpw = bcrypt.checkpw

    def spy(password, hashed):
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", spy)
    assert hasher.verify("any password", None) is False
    assert checked == [hasher.dummy_hash]


def test_dummy_hash_has_the_configured_cost():
    assert PasswordHasher(cost=5).dummy_hash.startswith(b"$2b$05$")


def test_corrupt_stored_hash_is_a_wrong_password(hasher):
    assert hasher.verify("whatever", "not-a-bcrypt-hash") is False
