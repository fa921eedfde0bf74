"""The key store: wrapped data keys and the key-encryption-key versions that wrap them.

Kept in tables of their own (not beside the data they protect) so they can be backed up on their
own, shorter schedule; see ADR 0006 and docs/encryption.md. Nothing here is secret on its own:
a wrapped key is useless without the key-encryption key, which never enters the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, UTCDateTime, utcnow
from domain.encryption import DataKey, KeyEncryptionKey, Suite, new_data_key


class KeyVersion(Base):
    """A key-encryption-key version: its public check value, and when it was retired."""

    __tablename__ = "key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DataKeyRecord(Base):
    """One data key, wrapped. ``owner`` names what it protects (``person:42``, ``family:7``);
    deleting the row crypto-shreds everything encrypted under it."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40), unique=True)
    suite: Mapped[int] = mapped_column(Integer)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class KeyRing:
    """The key-encryption keys this process holds (``api.keyring.load``) and the index key."""

    keks: dict[int, KeyEncryptionKey]
    index_key: bytes
    suite: Suite = Suite.AES256_GCM

    @property
    def current(self) -> KeyEncryptionKey:
        return self.keks[max(self.keks)]


class KeyMismatch(RuntimeError):
    """A key this process holds is not the one the database expects (or is retired)."""


class KeyCheck(Base):
    """Check values of the keys that are not versioned: the blind-index key and the suite. A
    wrong index key would not fail loudly like a wrong KEK; every lookup would silently miss."""

    __tablename__ = "key_checks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    check_value: Mapped[str] = mapped_column(String(80))


async def ensure_version(session: AsyncSession, ring: KeyRing) -> None:
    """Before wrapping under the current version: record it (with its check value) the first time,
    and refuse a wrong key or a retired version. Any path that creates data keys calls this, so
    the first server start cannot adopt a different key than the one that wrapped them."""
    kek = ring.current
    row = await session.get(KeyVersion, kek.version)
    if row is None:
        session.add(KeyVersion(version=kek.version, check_value=kek.check_value()))
        await session.flush()
    elif row.check_value != kek.check_value():
        raise KeyMismatch(
            f"key-encryption key version {kek.version} is not the one this database uses"
        )
    elif row.retired_at is not None:
        raise KeyMismatch(
            f"key version {kek.version} is retired: restart with the newer key file"
        )


async def create_data_key(session: AsyncSession, ring: KeyRing, owner: str) -> DataKey:
    """A new data key for ``owner``, stored wrapped under the current version."""
    await ensure_version(session, ring)
    record = DataKeyRecord(
        owner=owner,
        suite=int(ring.suite),
        kek_version=ring.current.version,
        wrapped=b"",
        created_at=utcnow(),
    )
    session.add(record)
    await session.flush()  # the id is part of the wrapping's associated data
    key = new_data_key(record.id, ring.suite)
    record.wrapped = ring.current.wrap(key, owner)
    await session.flush()
    return key


async def load_data_keys(
    session: AsyncSession, ring: KeyRing, owners: list[str]
) -> dict[str, DataKey]:
    """Unwrap the data keys of ``owners`` in one query (erased owners are simply absent)."""
    rows = (
        await session.execute(select(DataKeyRecord).where(DataKeyRecord.owner.in_(owners)))
    ).scalars()
    out: dict[str, DataKey] = {}
    for r in rows:
        kek = ring.keks.get(r.kek_version)
        if kek is None:
            raise KeyMismatch(
                f"a data key is wrapped under version {r.kek_version}, which this process does "
                "not hold: restart it with the new key file (rotation needs a rolling restart "
                "first)"
            )
        key = kek.unwrap(r.wrapped, r.id, r.owner)
        if int(key.suite) != r.suite:
            raise KeyMismatch(f"data key {r.id}: its suite does not match its record")
        out[r.owner] = key
    return out


async def destroy_data_key(session: AsyncSession, owner: str) -> bool:
    """Crypto-shredding: without its data key, everything encrypted for ``owner`` is noise."""
    done = await session.execute(delete(DataKeyRecord).where(DataKeyRecord.owner == owner))
    return bool(done.rowcount)


async def key_for(session: AsyncSession, ring: KeyRing, owner: str) -> DataKey:
    """The owner's data key, created on first use."""
    found = await load_data_keys(session, ring, [owner])
    return found[owner] if owner in found else await create_data_key(session, ring, owner)
