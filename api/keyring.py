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

import asyncio
import base64
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.base import Base, utcnow
from domain.encryption import (
    Binding,
    CiphertextError,
    KeyEncryptionKey,
    Suite,
    check_value,
    new_data_key,
)
from domain.keys import (
    DataKeyRecord,
    KeyCheck,
    KeyRing,
    KeyVersion,
    create_data_key,
    destroy_data_key,
    key_for_writing,
    load_data_keys,
    lock_data_key,
)
from domain.sealing import Encrypted, encrypted_columns, seal, sealed_models
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
            version = int(match.group(1))
            kek = _kek(version, _b64(value, name), name)
            if version in keks and not hmac.compare_digest(keks[version].secret, kek.secret):
                # Neither silently wins: data wrapped under one would not open under the other.
                raise KeyProblem(
                    f"{name} and {key_dir}/kek-v{version}.key hold different keys for version "
                    f"{version}: keep one source (docs/encryption.md)"
                )
            keks[version] = kek
    if not keks:
        raise KeyProblem(
            f"no key-encryption key: expected {key_dir}/kek-v1.key or XINQIAO_KEK_V1 "
            "(development: run `xinqiao keys init`; production: see docs/encryption.md)"
        )
    index_path = key_dir / INDEX_FILE
    if "XINQIAO_INDEX_KEY" in e:
        index_key = _b64(e["XINQIAO_INDEX_KEY"], "XINQIAO_INDEX_KEY")
        if index_path.exists() and not hmac.compare_digest(index_path.read_bytes(), index_key):
            raise KeyProblem(
                f"XINQIAO_INDEX_KEY and {index_path} hold different blind-index keys: keep one "
                "source (docs/encryption.md)"
            )
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
    When no key is left below the current version, it records when the older versions were
    emptied (the start of their wait for retirement, ``status``). Returns how many keys it
    re-wrapped.
    """
    target = ring.current
    done = 0
    touched: set[int] = set()
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
            k = DataKeyRecord
            rows = (
                await s.execute(
                    select(k.id, k.owner, k.kek_version, k.wrapped)
                    .where(k.kek_version < target.version)
                    .order_by(k.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                break
            rewrapped = []
            for row in rows:
                key = _kek_of(ring, row.kek_version).unwrap(row.wrapped, row.id, row.owner)
                rewrapped.append(
                    {
                        "b_id": row.id,
                        "b_old": row.kek_version,
                        "b_wrapped": target.wrap(key, row.owner),
                    }
                )
                touched.add(row.kek_version)
            # One executemany per batch (a statement per key was ~5 ms of round trips each);
            # the version guard keeps two concurrent runs from re-wrapping a key twice.
            table = cast(Table, k.__table__)  # declared as a table: typed FromClause, is a Table
            await s.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.kek_version == bindparam("b_old"))
                .values(wrapped=bindparam("b_wrapped"), kek_version=target.version),
                rewrapped,
            )
            await s.commit()
        done += len(rows)
        batches += 1
        if progress:
            progress(done, total)
    await _record_emptied(engine, target.version, touched)
    return done


def _kek_of(ring: KeyRing, version: int) -> KeyEncryptionKey:
    kek = ring.keks.get(version)
    if kek is None:
        raise KeyProblem(
            f"data keys are wrapped under key version {version}, whose key is not loaded"
        )
    return kek


async def _record_emptied(engine: AsyncEngine, current: int, touched: set[int]) -> None:
    """Once no data key is wrapped below ``current``: record when each older version stopped
    wrapping anything (now, for the versions this run emptied or never recorded). From then on
    no new backup can need it; after the backup retention, no existing one can either."""
    async with system_session(engine, reason="key rotation: record emptied versions") as s:
        left = (
            await s.execute(
                select(func.count())
                .select_from(DataKeyRecord)
                .where(DataKeyRecord.kek_version < current)
            )
        ).scalar_one()
        if left:
            return  # stopped part-way: the next run records it
        now = utcnow()
        for row in (await s.execute(select(KeyVersion))).scalars():
            if row.version < current and (row.emptied_at is None or row.version in touched):
                row.emptied_at = now
        await s.commit()


async def rekey(
    engine: AsyncEngine,
    ring: KeyRing,
    *,
    batch: int = 500,
    progress: Callable[[int, int], None] | None = None,
    max_batches: int | None = None,
) -> int:
    """Data-key re-encryption: give every data key fresh material (same record id, so the
    ciphertext headers stay valid), re-seal everything sealed under it, and wrap it under the
    current version: one owner per transaction, so the service keeps running.

    A pass marks every key pending, and each key's transaction clears its mark: after a kill,
    running it again resumes the pass; once none is pending, the next run starts a new one.
    Each key's row is locked first, as the API's writers lock it before sealing (``Gate.seal``),
    so no request can seal under a key being replaced. No plaintext is written: values are
    opened and re-sealed in memory. Blind indexes do not change. Returns how many keys it
    re-keyed (keys erased meanwhile are skipped)."""
    _check_coverage()
    async with system_session(engine, reason="data-key re-encryption: start") as s:
        total = await _pending(s)
        if not total:
            await s.execute(update(DataKeyRecord).values(rekey_pending=True))
            await s.commit()
            total = await _pending(s)
    done = 0
    batches = 0
    touched: set[int] = set()
    while max_batches is None or batches < max_batches:
        async with system_session(engine, reason="data-key re-encryption") as s:
            owners = (
                await s.execute(
                    select(DataKeyRecord.owner, DataKeyRecord.kek_version)
                    .where(DataKeyRecord.rekey_pending.is_(True))
                    .order_by(DataKeyRecord.id)
                    .limit(batch)
                )
            ).all()
        if not owners:
            break
        for owner, version in owners:
            if await _rekey_one_retrying(engine, ring, owner):
                done += 1
                touched.add(version)
        batches += 1
        if progress:
            progress(done, total)
    await _record_emptied(engine, ring.current.version, touched)
    return done


async def _pending(session: AsyncSession) -> int:
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(DataKeyRecord)
                .where(DataKeyRecord.rekey_pending.is_(True))
            )
        ).scalar_one()
    )


def _check_coverage() -> None:
    """Refuse to start unless every table with an encrypted column is one the pass re-seals."""
    sealed = {m.__tablename__ for m in sealed_models(Base)}
    in_schema = {
        t.name
        for t in Base.metadata.tables.values()
        if any(isinstance(c.type, Encrypted) for c in t.columns)
    }
    if sealed != in_schema:
        raise KeyProblem(
            f"re-encryption would miss the sealed tables {sorted(in_schema - sealed)}: refusing"
        )


async def _rekey_one_retrying(
    engine: AsyncEngine, ring: KeyRing, owner: str, attempts: int = 5
) -> bool:
    """One owner, retried when the database broke a deadlock with a request (a request that
    updated the owner's row before sealing takes the two locks in the other order; the
    database aborts one side, and nothing of this owner was changed)."""
    for attempt in range(1, attempts + 1):
        try:
            return await _rekey_one(engine, ring, owner)
        except DBAPIError as error:
            if attempt == attempts or not _is_lock_conflict(error):
                raise
            await asyncio.sleep(0.05 * attempt)
    return False


def _is_lock_conflict(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(w in text for w in ("deadlock", "could not serialize", "database is locked"))


async def _rekey_one(engine: AsyncEngine, ring: KeyRing, owner: str) -> bool:
    """Replace one owner's key and re-seal its rows, atomically. False if it was erased (or
    re-keyed by another run) before its turn."""
    kind, _, ident = owner.partition(":")
    if not ident.isdigit():
        raise KeyProblem(f"data key owner {owner!r} is not of the form kind:id")
    async with system_session(engine, reason="data-key re-encryption") as s:
        await lock_data_key(s, owner)  # first: writers wait for this transaction, and it for them
        record = (
            await s.execute(select(DataKeyRecord).where(DataKeyRecord.owner == owner))
        ).scalar_one_or_none()
        if record is None or not record.rekey_pending:
            return False
        old = _kek_of(ring, record.kek_version).unwrap(record.wrapped, record.id, owner)
        new = new_data_key(record.id, old.suite)
        for model in sealed_models(Base):
            owned = model.owned_by(kind, int(ident))
            if owned is None:
                continue
            table: str = model.__tablename__
            columns = encrypted_columns(model)
            rows = (
                await s.execute(
                    select(model.id, *(getattr(model, c) for c in columns)).where(owned)
                )
            ).all()
            for row in rows:
                resealed: dict[str, bytes] = {}
                for column, value in zip(columns, row[1:], strict=True):
                    if value is None:
                        continue
                    where = Binding(table, column, row[0])
                    try:
                        resealed[column] = new.encrypt(old.decrypt(value, where), where)
                    except CiphertextError:
                        raise KeyProblem(
                            f"{table} row {row[0]}, column {column}: its ciphertext does not open "
                            f"under the data key of {owner}; re-encryption stopped, nothing of "
                            "this key was changed"
                        ) from None
                if resealed:
                    await s.execute(
                        update(model)
                        .where(model.id == row[0])
                        .values(resealed)
                        .execution_options(synchronize_session=False)
                    )
        record.wrapped = ring.current.wrap(new, owner)
        record.kek_version = ring.current.version
        record.rekeyed_at = utcnow()
        record.rekey_pending = False
        await s.commit()
    return True


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


@dataclass(frozen=True)
class VersionState:
    """One key-encryption-key version on the schedule (``xinqiao keys status``)."""

    version: int
    created_at: datetime
    emptied_at: datetime | None
    retired_at: datetime | None
    data_keys: int
    newest: bool
    rotation_due: bool
    """Newest and older than the rotation interval (add a version, restart, rotate), or older
    and still wrapping data keys (a rotation did not finish)."""
    retire_due: bool
    """Wrapped nothing for longer than the backup retention: no backup that still exists can
    need it."""


@dataclass(frozen=True)
class KeyStatus:
    versions: list[VersionState]
    rekey_pending: int
    """Data keys an unfinished re-encryption pass has yet to reach."""

    @property
    def due(self) -> bool:
        return any(v.rotation_due or v.retire_due for v in self.versions)


async def status(
    engine: AsyncEngine,
    *,
    rotation_days: int,
    retention_days: int,
    now: datetime | None = None,
) -> KeyStatus:
    """The KEK schedule: which version is due for rotation, which for retirement."""
    at = now or utcnow()
    async with system_session(engine, reason="key status") as s:
        rows = list((await s.execute(select(KeyVersion).order_by(KeyVersion.version))).scalars())
        counts = dict(
            (
                await s.execute(
                    select(DataKeyRecord.kek_version, func.count()).group_by(
                        DataKeyRecord.kek_version
                    )
                )
            ).all()
        )
        pending = await _pending(s)
    newest = max((r.version for r in rows), default=None)
    out = []
    for r in rows:
        keys = int(counts.get(r.version, 0))
        is_newest = r.version == newest
        out.append(
            VersionState(
                version=r.version,
                created_at=r.created_at,
                emptied_at=r.emptied_at,
                retired_at=r.retired_at,
                data_keys=keys,
                newest=is_newest,
                rotation_due=(
                    at - r.created_at > timedelta(days=rotation_days) if is_newest else keys > 0
                ),
                retire_due=(
                    not is_newest
                    and r.retired_at is None
                    and keys == 0
                    and r.emptied_at is not None
                    and at - r.emptied_at >= timedelta(days=retention_days)
                ),
            )
        )
    return KeyStatus(out, pending)


async def retire_due(
    engine: AsyncEngine,
    *,
    retention_days: int,
    key_dir: Path | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Retire exactly the versions due (``status``), each with ``retire``'s own checks; with
    ``key_dir``, delete their key files there too. Returns the versions retired."""
    state = await status(engine, rotation_days=1, retention_days=retention_days, now=now)
    retired = []
    for v in state.versions:
        if v.retire_due:
            await retire(engine, v.version)
            retired.append(v.version)
            if key_dir is not None:
                (key_dir / f"kek-v{v.version}.key").unlink(missing_ok=True)
    return retired


async def seal_row(
    session: AsyncSession, ring: KeyRing, row: Any, values: Mapping[str, object]
) -> None:
    """Seal plain values into a row's encrypted columns (operator paths: demo, imports). The
    row is flushed first if it has no id yet (the id is part of the associated data)."""
    if row.id is None:
        await session.flush()
    key = await key_for_writing(session, ring, row.key_owner)  # under the key row's lock
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
    "rekey",
    "retire",
    "retire_due",
    "rotate",
    "seal_row",
    "status",
    "verify",
]
