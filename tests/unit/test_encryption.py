"""The field-encryption primitives: round trips in both suites, and loud failure on anything
tampered with, moved, truncated or under the wrong key."""

from __future__ import annotations

import os

import pytest

from domain.encryption import (
    Binding,
    CiphertextError,
    KeyEncryptionKey,
    Suite,
    blind_index,
    new_data_key,
    normalise,
    read_header,
)

WHERE = Binding("persons", "name", 42)


@pytest.mark.parametrize("suite", list(Suite))
def test_round_trip_and_format(suite: Suite) -> None:
    key = new_data_key(7, suite)
    sealed = key.encrypt("林小雨".encode(), WHERE)
    assert read_header(sealed) == (1, suite, 7)
    assert key.decrypt(sealed, WHERE) == "林小雨".encode()
    assert key.encrypt(b"x", WHERE) != key.encrypt(b"x", WHERE), "random nonces"


@pytest.mark.parametrize("suite", list(Suite))
def test_moved_ciphertexts_fail(suite: Suite) -> None:
    key = new_data_key(7, suite)
    sealed = key.encrypt(b"13800000001", WHERE)
    for elsewhere in (
        Binding("persons", "name", 43),  # another row
        Binding("persons", "phone", 42),  # another column
        Binding("families", "name", 42),  # another table
    ):
        with pytest.raises(CiphertextError):
            key.decrypt(sealed, elsewhere)


@pytest.mark.parametrize("suite", list(Suite))
def test_tampered_truncated_and_foreign_ciphertexts_fail(suite: Suite) -> None:
    key = new_data_key(7, suite)
    sealed = key.encrypt(b"secret note", WHERE)
    for position in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[position] ^= 0x01
        with pytest.raises(CiphertextError):
            key.decrypt(bytes(flipped), WHERE)
    for cut in (0, 5, len(sealed) - 1):
        with pytest.raises(CiphertextError):
            key.decrypt(sealed[:cut], WHERE)
    with pytest.raises(CiphertextError):
        new_data_key(7, suite).decrypt(sealed, WHERE)  # same id, another secret
    with pytest.raises(CiphertextError):
        new_data_key(8, suite).decrypt(sealed, WHERE)


@pytest.mark.parametrize("suite", list(Suite))
def test_data_keys_are_wrapped_bound_to_their_owner(suite: Suite) -> None:
    kek = KeyEncryptionKey(1, os.urandom(32))
    key = new_data_key(9, suite)
    wrapped = kek.wrap(key, "person:5")
    assert key.secret not in wrapped
    assert kek.unwrap(wrapped, 9, "person:5") == key
    with pytest.raises(CiphertextError):
        kek.unwrap(wrapped, 9, "person:6")
    with pytest.raises(CiphertextError):
        kek.unwrap(wrapped, 10, "person:5")
    with pytest.raises(CiphertextError):
        KeyEncryptionKey(1, os.urandom(32)).unwrap(wrapped, 9, "person:5")  # wrong KEK
    with pytest.raises(CiphertextError):
        KeyEncryptionKey(2, kek.secret).unwrap(wrapped, 9, "person:5")  # wrong version label


def test_the_check_value_tells_keys_apart_without_revealing_them() -> None:
    secret = os.urandom(32)
    assert KeyEncryptionKey(1, secret).check_value() == KeyEncryptionKey(1, secret).check_value()
    assert (
        KeyEncryptionKey(1, secret).check_value()
        != KeyEncryptionKey(1, os.urandom(32)).check_value()
    )
    key = new_data_key(1, Suite.AES256_GCM)
    assert repr(key) == "DataKey(id=1, suite=AES256_GCM)"
    assert repr(KeyEncryptionKey(3, secret)) == "KeyEncryptionKey(version=3)"


@pytest.mark.parametrize("suite", list(Suite))
def test_blind_indexes_match_equal_values_however_typed(suite: Suite) -> None:
    key = os.urandom(32)
    number = "11010519491231002x"
    assert blind_index(key, "id_number", number, suite) == blind_index(
        key, "id_number", " 11010519491231002X", suite
    )
    assert blind_index(key, "phone", "+86 138-0000-0001", suite) == blind_index(
        key, "phone", "13800000001", suite
    )
    assert blind_index(key, "name", "林 小雨", suite) == blind_index(key, "name", "林小雨", suite)
    # A value indexed as a phone never matches the same text indexed as another kind.
    assert blind_index(key, "phone", "13800000001", suite) != blind_index(
        key, "id_number", "13800000001", suite
    )
    assert blind_index(key, "name", "林小雨", suite) != blind_index(
        os.urandom(32), "name", "林小雨", suite
    )
    with pytest.raises(ValueError):
        normalise("address", "x")
