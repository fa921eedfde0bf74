"""The key store: wrapped data keys and the key-encryption-key versions that wrap them.

Kept in tables of their own (not beside the data they protect) so they can be backed up on their
own, shorter schedule; see ADR 0006 and docs/encryption.md. Nothing here is secret on its own:
a wrapped key is useless without the key-encryption key, which never enters the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Integer,
    LargeBinary,
    String,
    delete,
    false,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from domain.base import Base, Id, UTCDateTime, utcnow
from domain.encryption import (
    Binding,
    CiphertextError,
    DataKey,
    KeyEncryptionKey,
    Suite,
    new_data_key,
)
from domain.sealing import Sealed, encrypted_columns
from domain.session import rows_matched


class KeyVersion(Base):
    """A key-encryption-key version: its public check value, when it stopped wrapping any data
    key (``emptied_at``: backups taken since then cannot need it) and when it was retired."""

    __tablename__ = "key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    emptied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    rekeyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the key material was last replaced (None: the original material)."""
    rekey_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A re-encryption pass has started and not reached this key yet (``api.keyring.rekey``)."""


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
        raise KeyMismatch(f"key version {kek.version} is retired: restart with the newer key file")


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
    k = DataKeyRecord
    rows = await session.execute(  # columns, not entities: no identity-map work per key
        select(k.id, k.owner, k.suite, k.kek_version, k.wrapped).where(k.owner.in_(owners))
    )
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
    _write_keys(session).pop(owner, None)  # a later write in this transaction makes a new key
    return bool(rows_matched(done))


async def lock_data_key(session: AsyncSession, owner: str) -> None:
    """Take the write lock of ``owner``'s data-key row until the transaction ends (a row lock on
    PostgreSQL, the database write lock on SQLite). Re-encryption takes it before replacing a
    key, writers before sealing, so no write can seal under a key that is being replaced."""
    await session.execute(
        update(DataKeyRecord)
        .where(DataKeyRecord.owner == owner)
        .values(owner=DataKeyRecord.owner)
        .execution_options(synchronize_session=False)
    )


_WRITE_KEYS = "xinqiao_write_keys"


def _write_keys(session: AsyncSession) -> dict[str, DataKey]:
    """The data keys this transaction holds the lock of, by owner. Tied to the transaction
    object: after a commit or rollback the locks are gone, and so is the cache."""
    transaction = session.sync_session.get_transaction()
    held = session.info.get(_WRITE_KEYS)
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info[_WRITE_KEYS] = held
    keys: dict[str, DataKey] = held[1]
    return keys


async def key_for_writing(session: AsyncSession, ring: KeyRing, owner: str) -> DataKey:
    """The owner's data key for sealing, read under its row lock (created on first use). The
    first write under an owner in a transaction locks and re-reads the key (never a copy cached
    for reading, which a re-encryption may have replaced since); later ones reuse it."""
    held = _write_keys(session).get(owner)
    if held is not None:
        return held
    await lock_data_key(session, owner)  # begins the transaction the cache is tied to
    key = await key_for(session, ring, owner)
    _write_keys(session)[owner] = key
    return key


def follow_replaced_key(session: AsyncSession, owner: str, old: DataKey, new: DataKey) -> int:
    """A re-encryption replaced ``owner``'s key after this transaction read rows under the old
    one: re-seal their loaded ciphertexts in memory (as loaded values, never written back), so
    what the transaction reads and writes from now on is all under the new key. Returns how
    many values it re-sealed. Plaintext exists only in memory, for the moment of re-sealing."""
    count = 0
    for row in list(session.sync_session.identity_map.values()):
        if not isinstance(row, Sealed) or not encrypted_columns(type(row)):
            continue
        try:
            if row.key_owner != owner:
                continue
        except ValueError:  # no owner set yet
            continue
        for attr in encrypted_columns(type(row)):
            value = row.__dict__.get(attr)
            if value is None or attr in inspect(row).committed_state:
                continue  # not loaded, empty, or changed in this transaction
            where = Binding(type(row).__tablename__, attr, row.id)
            try:
                plain = old.decrypt(value, where)
            except CiphertextError:
                continue  # loaded after the re-encryption: already under the new key
            set_committed_value(row, attr, new.encrypt(plain, where))
            count += 1
    return count


async def key_for(session: AsyncSession, ring: KeyRing, owner: str) -> DataKey:
    """The owner's data key, created on first use."""
    found = await load_data_keys(session, ring, [owner])
    return found[owner] if owner in found else await create_data_key(session, ring, owner)
