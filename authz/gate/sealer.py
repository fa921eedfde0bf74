"""The sealer: data keys for one request, and sealing, opening and erasing encrypted fields.

A data key is unwrapped at most once per owner per request (one query for all the rows a load
returns), and a field is opened only when ``reveal`` has already decided it may leave the server.
The benchmark's unprotected mode injects a subclass that opens nothing (``tests/bench``); the
production gate has no switch for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import update

from authz.gate.db import Db
from authz.gate.types import GateStats
from authz.probe import NO_PROBE, Probe
from domain.base import Base
from domain.encryption import DataKey, blind_index
from domain.keys import (
    KeyRing,
    destroy_data_key,
    follow_replaced_key,
    key_for_writing,
    load_data_keys,
)
from domain.sealing import encrypted_columns, index_columns, seal, sealed_models, unseal


class Sealer:
    def __init__(
        self, db: Db, keys: KeyRing | None, stats: GateStats, probe: Probe = NO_PROBE
    ) -> None:
        self._db = db
        self._keys = keys
        self._stats = stats
        self._probe = probe
        self._deks: dict[str, DataKey | None] = {}
        """Data keys unwrapped for this request, by owner (None: erased)."""

    def _ring(self) -> KeyRing:
        if self._keys is None:
            raise RuntimeError("this gate has no key ring: encrypted fields cannot be opened")
        return self._keys

    async def load_keys(self, rows: Sequence[Any]) -> None:
        """Unwrap the data keys of these rows' owners once per request, in one query."""
        async with self._db.lock:  # decided inside the lock: concurrent loaders unwrap once
            owners = sorted({r.key_owner for r in rows} - self._deks.keys())
            if not owners:
                return
            with self._probe.span("crypto.unwrap", {"crypto.keys_wanted": len(owners)}) as span:
                found = await load_data_keys(self._db.session, self._ring(), owners)
                span["crypto.keys_unwrapped"] = len(found)
            self._stats.keys_unwrapped += len(found)
            for owner in owners:
                self._deks[owner] = found.get(owner)

    def open(self, row: Any, attr: str) -> Any:
        """A sealed field's plain value (its keys must have been loaded with the row)."""
        owner = row.key_owner
        self._stats.fields_opened += 1
        if owner not in self._deks:
            raise RuntimeError(f"data key of {owner} not loaded before opening {attr}")
        return unseal(row, attr, self._deks[owner])

    async def seal(self, row: Any, values: dict[str, object]) -> None:
        """Write plain values into a row's encrypted columns, under its owner's data key
        (created on first use). A new row is flushed first: its id is bound into each
        ciphertext. The first seal under an owner in a request locks the owner's key row until
        the request commits, so a re-encryption (``xinqiao keys rotate --data-keys``) cannot
        replace the key between this seal and the commit."""
        if row.id is None:
            await self._db.flush()
        owner = row.key_owner
        async with self._db.lock:
            # Under the key row's lock, re-read (the read cache may predate a re-encryption
            # that replaced the key; a seal under it would be unreadable once committed).
            key = await key_for_writing(self._db.session, self._ring(), owner)
            read = self._deks.get(owner)
            if read is not None and read != key:
                follow_replaced_key(self._db.session, owner, read, key)
        self._deks[owner] = key
        ring = self._ring()
        seal(row, key, values, index_key=ring.index_key, suite=ring.suite)

    async def seal_pending(self, row: Any) -> None:
        """Seal what a domain method set in the clear (a closing reason, a dropped follow-up's
        reason): the column type refuses plain values otherwise."""
        plain = take_plain(row)
        if plain:
            await self.seal(row, plain)

    def blind(self, kind: str, value: str) -> bytes:
        """The blind index of a value, for an exact lookup."""
        ring = self._ring()
        return blind_index(ring.index_key, kind, value, ring.suite)

    async def shred(self, kind: str, owner_id: int, scope: Callable[[Any], Any]) -> None:
        """Crypto-shred an owner: destroy its data key, and clear the ciphertexts and blind
        indexes of every row sealed under it (the rows stay). Unreadable already; clearing them
        means a later write about the owner starts a new record under a new key instead of
        mixing keys in one row."""
        owner = f"{kind}:{owner_id}"
        async with self._db.lock:
            await destroy_data_key(self._db.session, owner)
        for model in sealed_models(Base):
            owned = model.owned_by(kind, owner_id)
            if owned is None:
                continue
            cleared = [*encrypted_columns(model), *index_columns(model).values()]
            stmt = update(model).where(owned).values({column: None for column in cleared})
            await self._db.execute(scope(stmt))
        self._deks[owner] = None


def take_plain(row: Any) -> dict[str, object]:
    """Take the plain values out of a row's encrypted columns (leaving them empty), to seal."""
    plain: dict[str, object] = {}
    for attr in encrypted_columns(type(row)):
        value = getattr(row, attr)
        if value is not None and not isinstance(value, bytes):
            plain[attr] = value
            setattr(row, attr, None)
    return plain
