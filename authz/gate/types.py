"""The values the gate hands out: proofs (``Visible``, ``Permit``) and what reads return.

``Visible`` and ``Permit`` can only be made inside ``authz.gate``: holding one is proof that the
subject may see that row, or may perform that write, under the relations it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import InstrumentedAttribute

from authz.actions import Action
from authz.entities import Entity
from authz.relations import Relation
from domain.base import Base
from domain.errors import DomainError, ErrorCode

M = TypeVar("M", bound=Base)


class Forbidden(DomainError):
    """The record is visible, but this action on it is not allowed."""

    def __init__(self, message: str = "无权执行该操作", field: tuple[str, ...] = ()) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message, field)


class UnloggedWrite(RuntimeError):
    """A protected row was written without a permit, or without a write event: a programming
    error, refused at flush (or commit) so it can never reach the database unrecorded."""


@dataclass(frozen=True, slots=True)
class Visible(Generic[M]):
    """A row the subject may see, with the relations that make it visible."""

    row: M
    relations: frozenset[Relation]
    entity: Entity
    conditions: frozenset[str] = frozenset()
    person_id: int | None = None
    """The person the record is about (for the access log), when there is one."""


_ISSUER = object()


@dataclass(frozen=True, slots=True, eq=False)
class Permit:
    """Proof that the policy allowed one action of this subject on an entity, under a relation.

    Only ``Gate.authorize`` and ``Gate.for_write`` issue permits; writing a row (insert, seal,
    update, logging the write) requires one, and the session refuses at flush any protected row
    that was not written under a permit (``authz.gate.writes``).
    """

    entity: Entity
    action: Action
    relation: Relation
    record_id: int | None = None
    person_id: int | None = None
    _issuer: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._issuer is not _ISSUER:
            raise TypeError("permits are issued by the gate only")


def issue_permit(
    entity: Entity,
    action: Action,
    relation: Relation,
    *,
    record_id: int | None = None,
    person_id: int | None = None,
) -> Permit:
    return Permit(entity, action, relation, record_id, person_id, _ISSUER)


@dataclass(frozen=True, slots=True)
class Writable(Generic[M]):
    """A visible record together with the permit to change it (what ``for_write`` returns)."""

    visible: Visible[M]
    permit: Permit

    @property
    def row(self) -> M:
        return self.visible.row

    @property
    def person_id(self) -> int | None:
        return self.visible.person_id


@dataclass(frozen=True, slots=True)
class Revealed:
    values: dict[str, Any]
    """Readable requested fields → value. Withheld fields are absent."""
    redacted: tuple[str, ...]
    """Requested fields withheld by policy (attribute names)."""


@dataclass(frozen=True, slots=True)
class Filter:
    """A condition on one column. The column's field class must be readable to filter on it."""

    column: InstrumentedAttribute[Any]
    op: str  # "eq" | "in" | "gte" | "lt" | "is_null" | "is_not_null"
    value: Any
    field: str | None = None
    """The API's name for this filter, for error paths."""


@dataclass(frozen=True, slots=True)
class Order:
    column: InstrumentedAttribute[Any]
    descending: bool = False
    default: bool = False
    """Not chosen by the caller: if the column may not be used, order by key instead of failing."""

    @property
    def key(self) -> str:
        return f"{self.column.key}:{'desc' if self.descending else 'asc'}"


@dataclass(slots=True)
class Page(Generic[M]):
    items: list[Visible[M]]
    has_next: bool
    has_previous: bool
    cursors: list[str] = field(default_factory=list)
    order_key: str | None = None
    """The model attribute whose values the cursors carry (to be revealed and logged)."""


@dataclass(frozen=True, slots=True)
class Found:
    """A row found by an exact search (``Gate.search``): it may lie outside the subject's
    relations, so it carries only the values the search was allowed to open."""

    id: int
    row: Any
    visible: Visible[Any] | None
    """Set when the row is also inside the subject's relations (then reveal as usual)."""
    opened: dict[str, Any]


@dataclass
class GateStats:
    """What one request's gate did, for its operation span: cheap counters, no values."""

    decisions: int = 0
    rows: int = 0
    rows_withheld: int = 0
    keys_unwrapped: int = 0
    fields_opened: int = 0
