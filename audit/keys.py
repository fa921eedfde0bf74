"""Key files: generated on first use with mode 0600, or provided by the operator.

The access log has two keys of its own, kept apart from the data keys and the token key: an
Ed25519 key that signs checkpoints, and an HMAC key that hashes before/after values of writes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

AUDIT_SIGNING_KEY = "audit-signing-ed25519.pem"
AUDIT_HMAC_KEY = "audit-hmac.key"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_or_create_ed25519(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SystemExit(f"{path} is not an Ed25519 private key")
        return key
    if not create:
        raise SystemExit(f"key file {path} is missing")
    key = Ed25519PrivateKey.generate()
    _write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return key


def load_or_create_secret(path: Path, *, create: bool = True) -> bytes:
    if path.exists():
        data = path.read_bytes()
        if len(data) < 32:
            raise SystemExit(f"{path} is shorter than 32 bytes")
        return data
    if not create:
        raise SystemExit(f"key file {path} is missing")
    data = secrets.token_bytes(32)
    _write_private(path, data)
    return data
