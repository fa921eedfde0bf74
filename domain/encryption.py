"""Field encryption: cipher suites, the versioned ciphertext format, envelope keys, blind indexes.

Plain functions on the ``cryptography`` package, with no knowledge of tables or requests; the
column type and the key store build on them (ADR 0006).

Ciphertext format, version 1 (all integers big-endian)::

    0      1       2         10       22                      end
    | 0x01 | suite | dek id  | nonce  | ciphertext ‖ 16-byte tag |
      ver    1 B     8 B       12 B

Associated data binds a ciphertext to where it belongs::

    b"xq1" ‖ suite ‖ dek id ‖ len-prefixed(table) ‖ len-prefixed(column) ‖ row id (8 B)

so a ciphertext copied to another row, column or table, or relabelled with another data key or
suite, fails authentication. A failure is always ``CiphertextError``; garbage is never returned.

Suites: ``aes256gcm`` (default) and ``sm4gcm`` (SM4-GCM for data, HMAC-SM3 for blind indexes and
key derivation) for deployments that must pass a commercial-cryptography assessment (密评).
"""

from __future__ import annotations

import functools
import hashlib
import hmac as std_hmac
import os
import struct
import unicodedata
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
NONCE = 12
TAG = 16
HEADER = struct.Struct(">BBQ")  # version, suite, dek id
MIN_LENGTH = HEADER.size + NONCE + TAG


class Suite(IntEnum):
    AES256_GCM = 1
    SM4_GCM = 2

    @property
    def key_size(self) -> int:
        return 32 if self is Suite.AES256_GCM else 16

    @classmethod
    def named(cls, name: str) -> Suite:
        names = {"aes256gcm": cls.AES256_GCM, "sm4gcm": cls.SM4_GCM}
        if name not in names:
            raise ValueError(f"unknown cipher suite {name!r}: use aes256gcm or sm4gcm")
        return names[name]


class CiphertextError(Exception):
    """A ciphertext that is malformed, tampered with, moved, or under an unknown key."""


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a ciphertext lives: its associated data."""

    table: str
    column: str
    row_id: int


def _aad(suite: Suite, dek_id: int, where: Binding) -> bytes:
    parts = [b"xq1", bytes([suite]), struct.pack(">Q", dek_id)]
    for text in (where.table, where.column):
        raw = text.encode()
        parts += [struct.pack(">H", len(raw)), raw]
    parts.append(struct.pack(">Q", where.row_id))
    return b"".join(parts)


def _seal(
    suite: Suite, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes, aead: AESGCM | None = None
) -> bytes:
    if suite is Suite.AES256_GCM:
        return (aead or AESGCM(key)).encrypt(nonce, plaintext, aad)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return body + encryptor.tag


def _open(
    suite: Suite, key: bytes, nonce: bytes, sealed: bytes, aad: bytes, aead: AESGCM | None = None
) -> bytes:
    try:
        if suite is Suite.AES256_GCM:
            return (aead or AESGCM(key)).decrypt(nonce, sealed, aad)
        body, tag = sealed[:-TAG], sealed[-TAG:]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(body) + decryptor.finalize()
    except (InvalidTag, ValueError):
        raise CiphertextError("authentication failed") from None


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key: one per person (and their cases' notes), one per family."""

    id: int
    suite: Suite
    secret: bytes
    _aead: AESGCM | None = field(default=None, init=False, repr=False, compare=False)
    """The AES-GCM context, built once per key (rebuilding it cost a quarter of a field's
    decryption; see tests/bench/decrypt_cost.py)."""

    def __post_init__(self) -> None:
        if len(self.secret) != self.suite.key_size:
            raise ValueError("data key of the wrong size for its suite")
        if self.suite is Suite.AES256_GCM:
            object.__setattr__(self, "_aead", AESGCM(self.secret))

    def __repr__(self) -> str:  # never print the key
        return f"DataKey(id={self.id}, suite={self.suite.name})"

    def encrypt(self, plaintext: bytes, where: Binding) -> bytes:
        nonce = os.urandom(NONCE)
        header = HEADER.pack(VERSION, self.suite, self.id)
        return (
            header
            + nonce
            + _seal(
                self.suite,
                self.secret,
                nonce,
                plaintext,
                _aad(self.suite, self.id, where),
                self._aead,
            )
        )

    def decrypt(self, ciphertext: bytes, where: Binding) -> bytes:
        version, suite, dek_id = read_header(ciphertext)
        if dek_id != self.id or suite != self.suite:
            raise CiphertextError("ciphertext is under another data key")
        nonce = ciphertext[HEADER.size : HEADER.size + NONCE]
        sealed = ciphertext[HEADER.size + NONCE :]
        aad = _aad(self.suite, self.id, where)
        return _open(self.suite, self.secret, nonce, sealed, aad, self._aead)


def read_header(ciphertext: object) -> tuple[int, Suite, int]:
    """(version, suite, data key id) of a ciphertext, checked for shape only (anything that is
    not bytes is refused: a column may hold anything a writer put there)."""
    if not isinstance(ciphertext, (bytes, bytearray)) or len(ciphertext) < MIN_LENGTH:  # noqa: UP038
        raise CiphertextError("truncated or not a ciphertext")
    version, suite, dek_id = HEADER.unpack_from(ciphertext)
    if version != VERSION:
        raise CiphertextError(f"unknown ciphertext version {version}")
    try:
        return version, Suite(suite), dek_id
    except ValueError:
        raise CiphertextError(f"unknown cipher suite {suite}") from None


def new_data_key(dek_id: int, suite: Suite) -> DataKey:
    return DataKey(dek_id, suite, os.urandom(suite.key_size))


# -- wrapping data keys under a key-encryption key ---------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyEncryptionKey:
    """A versioned key-encryption key (KEK). It never encrypts data, only data keys."""

    version: int
    secret: bytes
    _subkeys: dict[Suite, bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a key-encryption key is 32 bytes")

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(version={self.version})"

    def _key_for(self, suite: Suite) -> bytes:
        # One subkey per purpose and suite: the KEK itself never keys an algorithm directly
        # (and SM4's 128-bit key is derived, never truncated). Derived once per process.
        subkey = self._subkeys.get(suite)
        if subkey is None:
            if suite is Suite.AES256_GCM:
                subkey = derive(self.secret, b"xq1 kek wrap aes256gcm", 32)
            else:
                subkey = derive(self.secret, b"xq1 kek wrap sm4gcm", 16, suite)
            self._subkeys[suite] = subkey
        return subkey

    def wrap(self, key: DataKey, owner: str) -> bytes:
        where = Binding("data_keys", owner, key.id)
        nonce = os.urandom(NONCE)
        header = HEADER.pack(VERSION, key.suite, self.version)
        aad = _aad(key.suite, self.version, where)
        return header + nonce + _seal(key.suite, self._key_for(key.suite), nonce, key.secret, aad)

    def unwrap(self, wrapped: bytes, dek_id: int, owner: str) -> DataKey:
        _, suite, kek_version = read_header(wrapped)
        if kek_version != self.version:
            raise CiphertextError("wrapped under another key-encryption key version")
        where = Binding("data_keys", owner, dek_id)
        nonce = wrapped[HEADER.size : HEADER.size + NONCE]
        secret = _open(
            suite,
            self._key_for(suite),
            nonce,
            wrapped[HEADER.size + NONCE :],
            _aad(suite, self.version, where),
        )
        return DataKey(dek_id, suite, secret)

    def check_value(self) -> str:
        """A public fingerprint that tells the right key from a wrong one at start-up, without
        revealing it (HMAC of a constant)."""
        return check_value(derive(self.secret, b"xq1 kek check", 32))


def check_value(secret: bytes) -> str:
    """HMAC of a constant: tells a right key from a wrong one and reveals nothing of it."""
    return std_hmac.new(secret, b"xq1 key check", hashlib.sha256).hexdigest()[:32]


def derive(secret: bytes, label: bytes, length: int, suite: Suite = Suite.AES256_GCM) -> bytes:
    """A subkey for one purpose: HMAC(secret, label) with the suite's hash, truncated."""
    algorithm = hashes.SHA256() if suite is Suite.AES256_GCM else hashes.SM3()
    mac = crypto_hmac.HMAC(secret, algorithm)
    mac.update(label)
    return mac.finalize()[:length]


# -- blind indexes -----------------------------------------------------------------------------


def normalise(kind: str, value: str) -> str:
    """The form a value is indexed in, so equal values match however they were typed."""
    text = unicodedata.normalize("NFKC", value).strip()
    if kind == "id_number":
        return text.upper()
    if kind == "phone":
        digits = "".join(c for c in text if c.isdigit())
        return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if kind == "name":
        return "".join(text.split())
    raise ValueError(f"no blind index for {kind!r}")


def blind_index(index_key: bytes, kind: str, value: str, suite: Suite = Suite.AES256_GCM) -> bytes:
    """Keyed HMAC of the normalised value, under a subkey per kind (an ID number's index never
    equals a phone's). Full width (32 bytes): exact lookup without decryption, no false hits."""
    subkey = _index_subkey(index_key, kind, suite)
    algorithm = hashes.SHA256() if suite is Suite.AES256_GCM else hashes.SM3()
    mac = crypto_hmac.HMAC(subkey, algorithm)
    mac.update(normalise(kind, value).encode())
    return mac.finalize()


@functools.lru_cache(maxsize=32)
def _index_subkey(index_key: bytes, kind: str, suite: Suite) -> bytes:
    return derive(index_key, b"xq1 blind index " + kind.encode(), 32, suite)
