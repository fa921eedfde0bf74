"""Key-encryption keys: where they come from, how the server knows they are the right ones, and
the operator's work on them (rotate, retire, erase a person's data key).

Sources, per version N: the file ``<key dir>/kek-vN.key`` (32 random bytes, mode 0600) or the
environment variable ``XINQIAO_KEK_VN`` (base64), for containers fed by a secret store. The
highest version present wraps new data keys. A KMS plugs in behind the same two calls,
``KeyEncryptionKey.wrap`` / ``unwrap``; the key would then never leave it.

The blind-index key (``blind-index.key`` or ``XINQIAO_INDEX_KEY``) is separate: it can never
decrypt anything, and a leaked index key does not expose a data key.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.base import utcnow
from domain.encryption import CiphertextError, KeyEncryptionKey, Suite, check_value
from domain.keys import (
    DataKeyRecord,
    KeyCheck,
    KeyRing,
    KeyVersion,
    create_data_key,
    destroy_data_key,
    key_for,
    load_data_keys,
)
from domain.sealing import seal
from domain.session import system_session

KEK_FILE = re.compile(r"^kek-v([1-9][0-9]{0,5})\.key$")
INDEX_FILE = "blind-index.key"


class KeyProblem(SystemExit):
    """The server must not start (or the command not run): the message says why and what to do."""


def load(key_dir: Path, env: Mapping[str, str] | None = None, suite: str = "aes256gcm") -> KeyRing:
    e = os.environ if env is None else env
    keks: dict[int, KeyEncryptionKey] = {}
    if key_dir.is_dir():
        for path in sorted(key_dir.iterdir()):
            match = KEK_FILE.match(path.name)
            if match:
                _check_private(path)
                keks[int(match.group(1))] = _kek(int(match.group(1)), path.read_bytes(), path)
    for name, value in e.items():
        match = re.fullmatch(r"XINQIAO_KEK_V([1-9][0-9]{0,5})", name)
        if match:
            raw = _b64(value, name)
            keks[int(match.group(1))] = _kek(int(match.group(1)), raw, name)
    if not keks:
        raise KeyProblem(
            f"no key-encryption key: expected {key_dir}/kek-v1.key or XINQIAO_KEK_V1 "
            "(development: run `xinqiao keys init`; production: see docs/encryption.md)"
        )
    index_path = key_dir / INDEX_FILE
    if "XINQIAO_INDEX_KEY" in e:
        index_key = _b64(e["XINQIAO_INDEX_KEY"], "XINQIAO_INDEX_KEY")
    elif index_path.exists():
        _check_private(index_path)
        index_key = index_path.read_bytes()
    else:
        raise KeyProblem(f"no blind-index key: expected {index_path} or XINQIAO_INDEX_KEY")
    if len(index_key) != 32:
        raise KeyProblem("the blind-index key must be 32 bytes")
    return KeyRing(keks, index_key, Suite.named(suite))


def _kek(version: int, raw: bytes, source: object) -> KeyEncryptionKey:
    if len(raw) != 32:
        raise KeyProblem(f"{source}: a key-encryption key is exactly 32 bytes")
    return KeyEncryptionKey(version, raw)


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise KeyProblem(f"{name} is not base64") from None


def _check_private(path: Path) -> None:
    if path.stat().st_mode & 0o077:
        raise KeyProblem(f"{path} is readable by others: chmod 600 it")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def init_keys(key_dir: Path) -> list[Path]:
    """Create the first key-encryption key and the blind-index key if absent (development)."""
    made = []
    if not any(KEK_FILE.match(p.name) for p in key_dir.glob("kek-v*.key")):
        _write_private(key_dir / "kek-v1.key", secrets.token_bytes(32))
        made.append(key_dir / "kek-v1.key")
    if not (key_dir / INDEX_FILE).exists():
        _write_private(key_dir / INDEX_FILE, secrets.token_bytes(32))
        made.append(key_dir / INDEX_FILE)
    return made


def add_version(key_dir: Path) -> Path:
    """A new key-encryption-key version file, one above the highest present."""
    versions = [
        int(m.group(1)) for p in key_dir.glob("kek-v*.key") if (m := KEK_FILE.match(p.name))
    ]
    path = key_dir / f"kek-v{max(versions, default=0) + 1}.key"
    _write_private(path, secrets.token_bytes(32))
    return path


async def verify(engine: AsyncEngine, ring: KeyRing) -> None:
    """Refuse a wrong key, and a missing one that data keys still need; register new versions."""
    async with system_session(engine, reason="key check at start-up") as s:
        known = {v.version: v for v in (await s.execute(select(KeyVersion))).scalars()}
        for version, kek in sorted(ring.keks.items()):
            row = known.get(version)
            if row is None:
                await _unwraps_one(s, kek)
                s.add(
                    KeyVersion(version=version, check_value=kek.check_value(), created_at=utcnow())
                )
            elif row.check_value != kek.check_value():
                raise KeyProblem(
                    f"the key-encryption key for version {version} is not the one this database "
                    "was encrypted with (check value mismatch): restore the right key file"
                )
        for name, value in (
            ("blind_index_key", check_value(ring.index_key)),
            ("cipher_suite", ring.suite.name),
        ):
            recorded = await s.get(KeyCheck, name)
            if recorded is None:
                s.add(KeyCheck(name=name, check_value=value))
            elif recorded.check_value != value:
                raise KeyProblem(
                    f"the {name.replace('_', ' ')} is not the one this database was built with: "
                    "every lookup by ID number or phone would silently miss; restore it"
                )
        needed = (await s.execute(select(DataKeyRecord.kek_version).distinct())).scalars().all()
        missing = sorted(set(needed) - ring.keks.keys())
        if missing:
            raise KeyProblem(
                f"data keys are wrapped under key version(s) {missing}, whose key is not loaded"
            )
        await s.commit()


async def rotate(
    engine: AsyncEngine,
    ring: KeyRing,
    *,
    batch: int = 500,
    progress: Callable[[int, int], None] | None = None,
    max_batches: int | None = None,
) -> int:
    """Re-wrap every data key under the current version, a batch per transaction.

    Online (each batch is a short transaction; readers unwrap with whichever version a row
    carries) and resumable (a row's version records its progress: run it again after a kill).
    No plaintext is written: a data key exists unwrapped only in this process's memory.
    Returns how many keys it re-wrapped.
    """
    target = ring.current
    done = 0
    async with system_session(engine, reason="key rotation") as s:
        total = (
            await s.execute(
                select(func.count())
                .select_from(DataKeyRecord)
                .where(DataKeyRecord.kek_version < target.version)
            )
        ).scalar_one()
    batches = 0
    while max_batches is None or batches < max_batches:
        async with system_session(engine, reason="key rotation") as s:
            rows = (
                (
                    await s.execute(
                        select(DataKeyRecord)
                        .where(DataKeyRecord.kek_version < target.version)
                        .order_by(DataKeyRecord.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not rows:
                break
            for row in rows:
                key = ring.keks[row.kek_version].unwrap(row.wrapped, row.id, row.owner)
                await s.execute(
                    update(DataKeyRecord)
                    .where(DataKeyRecord.id == row.id, DataKeyRecord.kek_version == row.kek_version)
                    .values(wrapped=target.wrap(key, row.owner), kek_version=target.version)
                )
            await s.commit()
        done += len(rows)
        batches += 1
        if progress:
            progress(done, total)
    return done


async def _unwraps_one(session: AsyncSession, kek: KeyEncryptionKey) -> None:
    """A version seen for the first time that data keys already use (created before its check
    value was recorded): the key must unwrap one of them."""
    row = (
        await session.execute(
            select(DataKeyRecord).where(DataKeyRecord.kek_version == kek.version).limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return
    try:
        kek.unwrap(row.wrapped, row.id, row.owner)
    except CiphertextError:
        raise KeyProblem(
            f"the key-encryption key for version {kek.version} does not unwrap this database's "
            "data keys: restore the right key file"
        ) from None


async def retire(engine: AsyncEngine, version: int) -> None:
    """Mark a version retired once no data key needs it; its key file can then be destroyed,
    which makes every backup taken before the rotation unreadable (docs/encryption.md).
    The newest version cannot be retired: servers wrap new data keys under it."""
    async with system_session(engine, reason="key retirement") as s:
        versions = sorted((await s.execute(select(KeyVersion.version))).scalars())
        if version not in versions:
            raise KeyProblem(f"no key version {version} is recorded")
        if version == versions[-1]:
            raise KeyProblem(f"version {version} is the newest: add a version and rotate first")
        still = (
            await s.execute(
                select(func.count())
                .select_from(DataKeyRecord)
                .where(DataKeyRecord.kek_version == version)
            )
        ).scalar_one()
        if still:
            raise KeyProblem(
                f"{still} data keys are still wrapped under version {version}: rotate first"
            )
        await s.execute(
            update(KeyVersion).where(KeyVersion.version == version).values(retired_at=utcnow())
        )
        await s.commit()


async def seal_row(
    session: AsyncSession, ring: KeyRing, row: Any, values: Mapping[str, str | None]
) -> None:
    """Seal plain values into a row's encrypted columns (operator paths: demo, imports). The
    row is flushed first if it has no id yet (the id is part of the associated data)."""
    if row.id is None:
        await session.flush()
    key = await key_for(session, ring, row.key_owner)
    seal(row, key, values, index_key=ring.index_key, suite=ring.suite)


__all__ = [
    "KeyProblem",
    "KeyRing",
    "add_version",
    "create_data_key",
    "destroy_data_key",
    "init_keys",
    "load",
    "load_data_keys",
    "retire",
    "rotate",
    "seal_row",
    "verify",
]
