"""Encrypted columns: what is protected is declared on the column, and only ciphertext binds.

``encrypted(field_class)`` makes a column whose value in the database is always a ciphertext of
``domain.encryption`` (the type refuses to bind anything else, so plaintext cannot be written by
mistake); ``blind_index(source, field_class)`` makes the keyed-HMAC column exact lookups use.
Sealing and opening a row's values needs its data key and its id (the associated data); the gate
does it for requests (``authz.gate``), ``api.keyring.seal_row`` for operator paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Dialect, LargeBinary, inspect
from sqlalchemy.types import TypeDecorator

from domain.classification import FieldClass, classified
from domain.encryption import (
    Binding,
    CiphertextError,
    DataKey,
    Suite,
    blind_index,
    read_header,
)


class PlaintextRefused(TypeError):
    """Something tried to write a plain value into an encrypted column."""


class Encrypted(TypeDecorator[bytes]):
    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes):
            raise PlaintextRefused("an encrypted column takes ciphertext only (seal it first)")
        try:
            read_header(value)
        except CiphertextError:
            raise PlaintextRefused("not a ciphertext: refusing to write it") from None
        return value


def encrypted(field_class: FieldClass) -> dict[str, Any]:
    return {**classified(field_class), "encrypted": True}


def indexed_by(source: str, field_class: FieldClass) -> dict[str, Any]:
    """The ``info`` of a blind-index column: same class as its source (a filter on it is a
    filter on the source), never revealed itself."""
    return {**classified(field_class), "blind_index_of": source}


def encrypted_columns(model: type) -> tuple[str, ...]:
    cached = model.__dict__.get("_encrypted_cache")
    if cached is None:
        cached = tuple(
            a.key for a in inspect(model).column_attrs if a.columns[0].info.get("encrypted")
        )
        model._encrypted_cache = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


def index_columns(model: type) -> dict[str, str]:
    """Source attribute → its blind-index attribute."""
    cached = model.__dict__.get("_index_cache")
    if cached is None:
        cached = {
            a.columns[0].info["blind_index_of"]: a.key
            for a in inspect(model).column_attrs
            if a.columns[0].info.get("blind_index_of")
        }
        model._index_cache = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


INDEX_KINDS = {"id_number": "id_number", "phone": "phone", "name": "name"}


def seal(
    row: Any,
    key: DataKey,
    values: Mapping[str, str | None],
    *,
    index_key: bytes,
    suite: Suite,
) -> None:
    """Set ``values`` (plain) on ``row`` as ciphertexts, and their blind indexes. The row needs
    its id: the ciphertext is bound to it."""
    if row.id is None:
        raise ValueError("seal a row after it has an id")
    table = type(row).__tablename__
    indexes = index_columns(type(row))
    for attr, value in values.items():
        if attr not in encrypted_columns(type(row)):
            raise ValueError(f"{attr} is not an encrypted column")
        sealed = (
            None if value is None else key.encrypt(value.encode(), Binding(table, attr, row.id))
        )
        setattr(row, attr, sealed)
        if attr in indexes:
            hashed = (
                None if value is None else blind_index(index_key, INDEX_KINDS[attr], value, suite)
            )
            setattr(row, indexes[attr], hashed)


def unseal(row: Any, attr: str, key: DataKey | None) -> str | None:
    """The plain value of an encrypted attribute; None if empty or its key was destroyed.
    Anything tampered with raises ``CiphertextError``."""
    value = getattr(row, attr)
    if value is None or key is None:
        return None
    return key.decrypt(value, Binding(type(row).__tablename__, attr, row.id)).decode()
