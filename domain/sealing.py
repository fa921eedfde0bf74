"""Encrypted columns: what is protected is declared on the column, and only ciphertext binds.

``encrypted(field_class)`` makes a column whose value in the database is always a ciphertext of
``domain.encryption`` (the type refuses to bind anything else, so plaintext cannot be written by
mistake); ``blind_index(source, field_class)`` makes the keyed-HMAC column exact lookups use.
Sealing and opening a row's values needs its data key and its id (the associated data); the gate
does it for requests (``authz.gate``), ``api.keyring.seal_row`` for operator paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import ColumnElement, Dialect, LargeBinary, and_
from sqlalchemy.orm import DeclarativeBase, Mapped, class_mapper
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


class Sealed:
    """A model with encrypted columns, and whose data key seals them.

    ``key_owners`` is a table, read in order: the first attribute that is set names the owner
    (``("person", "person_id")`` → ``person:42``). The subject's records use the person's key
    (so erasing the person reaches them); family-level text uses the family's key. A row's owner
    must not change after its first seal.
    """

    key_owners: ClassVar[tuple[tuple[str, str], ...]]
    opened_as: ClassVar[Mapping[str, Callable[[str], Any]]] = {}
    """How an opened value becomes the API's value (sealed text is always a string: a date is
    sealed as ISO text, a list as JSON)."""

    if TYPE_CHECKING:
        # Mixed into mapped models only (domain.models): their table and their id, which a
        # ciphertext is bound to, are what the key paths use of them.
        __tablename__: str
        id: Mapped[int]

    @property
    def key_owner(self) -> str:
        for kind, attr in self.key_owners:
            value = getattr(self, attr)
            if value is not None:
                return f"{kind}:{value}"
        raise ValueError(f"{type(self).__name__} has no key owner set")

    @classmethod
    def owned_by(cls, kind: str, owner_id: int) -> ColumnElement[bool] | None:
        """SQL for "this row's key owner is ``kind:owner_id``" (None: never owned by ``kind``)."""
        earlier: list[ColumnElement[bool]] = []
        for k, attr in cls.key_owners:
            column = getattr(cls, attr)
            if k == kind:
                return and_(*earlier, column == owner_id)
            earlier.append(column.is_(None))
        return None


def sealed_models(base: type[DeclarativeBase]) -> Iterator[type[Sealed]]:
    """Every mapped model with encrypted columns (for erasure and re-encryption). All models
    are imported first: a registry holds only the classes imported so far, and a re-encryption
    that missed a table would leave its text under key material that no longer exists."""
    import domain.models  # noqa: F401

    for mapper in base.registry.mappers:
        model = mapper.class_
        if issubclass(model, Sealed) and encrypted_columns(model):
            yield model


def encrypted(field_class: FieldClass) -> dict[str, Any]:
    return {**classified(field_class), "encrypted": True}


def indexed_by(source: str, field_class: FieldClass) -> dict[str, Any]:
    """The ``info`` of a blind-index column: same class as its source (a filter on it is a
    filter on the source), never revealed itself."""
    return {**classified(field_class), "blind_index_of": source}


_ENCRYPTED: dict[type, tuple[str, ...]] = {}
_INDEXES: dict[type, dict[str, str]] = {}


def encrypted_columns(model: type) -> tuple[str, ...]:
    """The encrypted attributes of a mapped class, computed once per class."""
    cached = _ENCRYPTED.get(model)
    if cached is None:
        cached = _ENCRYPTED[model] = tuple(
            a.key for a in class_mapper(model).column_attrs if a.columns[0].info.get("encrypted")
        )
    return cached


def index_columns(model: type) -> dict[str, str]:
    """Source attribute → its blind-index attribute, computed once per class."""
    cached = _INDEXES.get(model)
    if cached is None:
        cached = _INDEXES[model] = {
            a.columns[0].info["blind_index_of"]: a.key
            for a in class_mapper(model).column_attrs
            if a.columns[0].info.get("blind_index_of")
        }
    return cached


INDEX_KINDS = {"id_number": "id_number", "phone": "phone", "name": "name"}


def as_text(value: object) -> str | None:
    """What is sealed for a value: text as is, a date in ISO form, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def seal(
    row: Any,
    key: DataKey,
    values: Mapping[str, object],
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
    for attr, raw in values.items():
        value = as_text(raw)
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
