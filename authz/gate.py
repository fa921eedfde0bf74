"""The privacy gate: the one enforcement point between the API and the data.

Every read and write of a protected record goes through a ``Gate``, which is built once per request
for one subject and owns that request's database session:

* **rows** — list, lookup and child loads start from the subject's relations compiled to SQL
  (``authz.relations``); a record outside them is indistinguishable from a missing one;
* **fields** — ``reveal`` decides each field class once per (entity, relation set) per request and
  returns only readable values, naming the rest as redacted;
* **disclosure** — every reveal, miss and write is handed to the access log sink.

Resolvers never see the session. ``Visible`` rows can only be made here, so holding one is proof
that the subject may see that row under the relations it carries.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, Generic, NoReturn, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    and_,
    delete,
    false,
    func,
    inspect,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from authz.conditions import ANY, Condition, ConditionCompiler
from authz.entities import Entity, entity_of
from authz.links import PERSON_LINKS
from authz.overlays import (
    OVERLAY_CONDITIONS,
    class_allowed,
    minor_overlay_sql,
    tighten,
    visible_categories,
)
from authz.policy import Grant, Policy
from authz.probe import NO_PROBE, Probe
from authz.relations import Relation, RelationCompiler
from authz.subject import Subject
from domain.assessments import Assessment
from domain.base import Base
from domain.cases import Case, CaseAssignment, CaseCoUnit
from domain.classification import FieldClass, field_classes
from domain.disclosure import AccessKind, Disclosure, DisclosureSink
from domain.emergency import EmergencyGrant
from domain.encryption import DataKey, blind_index
from domain.errors import DomainError, ErrorCode, NotFound
from domain.instruments import DEFINITIONS
from domain.keys import (
    KeyRing,
    destroy_data_key,
    follow_replaced_key,
    key_for_writing,
    load_data_keys,
)
from domain.persons import Person
from domain.referrals import Referral, ReferralStatus
from domain.screening import BandSpan, GradeRow, ScreeningCampaign, Tally, suppressed_table
from domain.sealing import encrypted_columns, index_columns, seal, sealed_models, unseal
from domain.session import ROW_SCOPE
from domain.staff import Role
from domain.units import Unit, UnitKind
from domain.values import age_band_of, mask_name

M = TypeVar("M", bound=Base)

NON_PERSONAL = frozenset({Entity.UNIT})
"""Entities whose reads are not disclosures of personal data (still gated, not logged per row)."""


class Forbidden(DomainError):
    """The record is visible, but this action on it is not allowed."""

    def __init__(self, message: str = "无权执行该操作", field: tuple[str, ...] = ()) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message, field)


@dataclass(frozen=True, slots=True)
class Visible(Generic[M]):
    """A row the subject may see, with the relations that make it visible."""

    row: M
    relations: frozenset[Relation]
    entity: Entity
    conditions: frozenset[str] = frozenset()
    person_id: int | None = None
    """The person the record is about (for the access log), when there is one."""


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
    op: str  # "eq" | "in" | "gte" | "lt"
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


@dataclass(frozen=True, slots=True)
class LookupHit:
    person_id: int
    visible: Visible[Any] | None
    """Set when the person is inside the subject's relations (then reveal as usual)."""
    basic: dict[str, Any]
    """Masked name, gender, age band, residence: all a search may show."""


@dataclass(slots=True)
class Page(Generic[M]):
    items: list[Visible[M]]
    has_next: bool
    has_previous: bool
    cursors: list[str] = field(default_factory=list)
    order_key: str | None = None
    """The model attribute whose values the cursors carry (to be revealed and logged)."""


@dataclass
class GateStats:
    """What one request's gate did, for its operation span: cheap counters, no values."""

    decisions: int = 0
    rows: int = 0
    rows_withheld: int = 0
    keys_unwrapped: int = 0
    fields_opened: int = 0


class Gate:
    def __init__(
        self,
        *,
        session: AsyncSession,
        subject: Subject,
        policy: Policy,
        sink: DisclosureSink,
        now: datetime | None = None,
        keys: KeyRing | None = None,
        probe: Probe = NO_PROBE,
        decrypt: bool = True,
    ) -> None:
        self._session = session
        self._keys = keys
        self._probe = probe
        self._decrypt = decrypt
        """False only in the benchmark's unprotected mode: sealed fields are served as stand-ins
        of their length, no key is unwrapped (it prices decryption; nothing is disclosed)."""
        self.stats = GateStats()
        """Counts for this request's operation span (decisions, rows, keys, fields opened)."""
        self._deks: dict[str, DataKey | None] = {}
        """Data keys unwrapped for this request, by owner (None: erased)."""
        self.subject = subject
        self._policy = policy
        self._sink = sink
        self.now = now or datetime.now(UTC)
        self._relations = RelationCompiler(subject, self.now)
        self._row_conditions = ConditionCompiler(self.now.date(), self._relations)
        self._decisions: dict[
            tuple[Entity, frozenset[Relation], frozenset[str]], frozenset[FieldClass]
        ] = {}
        self._plans: dict[type[Base], tuple[ColumnElement[bool], list[Any]] | None] = {}
        self._grants: dict[Entity, frozenset[Grant]] = {}
        # GraphQL resolves sibling fields concurrently; one AsyncSession must not be.
        self._lock = asyncio.Lock()

    async def _execute(self, stmt: Any) -> Any:
        async with self._lock:
            return await self._session.execute(stmt)

    # -- decisions -------------------------------------------------------------------------

    def grants(self, entity: Entity) -> frozenset[Grant]:
        """(relation, condition) pairs under which this subject may see rows of ``entity``."""
        if entity not in self._grants:
            self._grants[entity] = self._policy.grants(self.subject.roles, entity)
        return self._grants[entity]

    def readable(
        self,
        entity: Entity,
        relations: frozenset[Relation],
        conditions: frozenset[str] = frozenset(),
    ) -> frozenset[FieldClass]:
        """Readable classes for a row, decided once per (entity, relations, conditions)."""
        if self.subject.read_relations is not None:
            relations = relations & self.subject.read_relations
        key = (entity, relations, conditions)
        decision = self._decisions.get(key)
        if decision is None:
            roles = self.subject.roles
            granted = self._policy.readable(roles, entity, relations, conditions)
            if self._policy.unrestricted:
                decision = granted
            else:
                decision = tighten(roles, entity, relations, conditions, granted)
                if Relation.REFERRAL in relations:
                    # A consented referral shares exactly its classes, minor or not (ADR 0005).
                    shared = self._policy.readable(roles, entity, {Relation.REFERRAL}, conditions)
                    decision |= tighten(
                        roles, entity, frozenset({Relation.REFERRAL}), frozenset(), shared
                    )
            if self.subject.class_cap is not None:
                decision &= self.subject.class_cap
            self._decisions[key] = decision
            self.stats.decisions += 1
        return decision

    def may(
        self,
        entity: Entity,
        action: str,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> Relation | None:
        return self._policy.permitting_relation(
            self.subject.roles, entity, action, relations, conditions
        )

    # -- reading rows ----------------------------------------------------------------------

    def _plan(self, model: type[Base]) -> tuple[ColumnElement[bool], list[Any]] | None:
        """The row filter (any grant: relation AND condition) and the flag columns telling, per
        row, which relations and conditions hold. None when nothing may be seen. Built once per
        model per request (a page loads the same model at several nesting levels)."""
        if model not in self._plans:
            self._plans[model] = self._build_plan(model)
        return self._plans[model]

    def _build_plan(self, model: type[Base]) -> tuple[ColumnElement[bool], list[Any]] | None:
        entity = entity_of(model)
        link = PERSON_LINKS.get(entity)
        links = [] if link is None else [link.label("link_person")]
        if self._policy.unrestricted:
            return true(), links
        relations = self._relations.predicates(entity)
        conditions = self._row_conditions.conditions(entity)
        only = self.subject.read_relations
        usable = [
            (r, c)
            for r, c in sorted(self.grants(entity))
            if r in relations and (c == ANY or c in conditions) and (only is None or r in only)
        ]
        if not usable:
            return None
        where = or_(
            *(
                relations[r] if c == ANY else and_(relations[r], conditions[Condition(c)])
                for r, c in usable
            )
        )
        flag_conditions = {Condition(c) for _, c in usable if c != ANY}
        flag_conditions |= OVERLAY_CONDITIONS.get(entity, frozenset()) & conditions.keys()
        flags = [relations[r].label(f"rel_{r.value}") for r in sorted({r for r, _ in usable})]
        flags += [conditions[c].label(f"cond_{c.value}") for c in sorted(flag_conditions)]
        return where, flags + links

    def _scoped(self, model: type[M], *where: ColumnElement[bool]) -> Select[Any] | None:
        """``SELECT model, <flags> WHERE <any grant> AND where``, or None (deny)."""
        plan = self._plan(model)
        if plan is None:
            return None
        visible, flags = plan
        return (
            select(model, *flags)
            .where(visible, *where)
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )

    def _visible_predicate(self, model: type[Base]) -> ColumnElement[bool]:
        plan = self._plan(model)
        return false() if plan is None else plan[0]

    async def _rows(self, model: type[M], stmt: Select[Any]) -> list[Visible[M]]:
        entity = entity_of(model)
        names = [
            c for c in stmt.selected_columns.keys() if c.startswith(("rel_", "cond_", "link_"))
        ]
        with self._probe.span("authz.rows", {"authz.entity": entity.value}) as span:
            result = await self._execute(stmt)
            out: list[Visible[M]] = []
            for row in result.all():
                values = dict(zip(names, row[1:], strict=True))
                rels = frozenset(
                    Relation(n[4:]) for n, v in values.items() if v and n[:4] == "rel_"
                )
                conds = frozenset(n[5:] for n, v in values.items() if v and n[:5] == "cond_")
                person = values.get("link_person")
                out.append(Visible(row[0], rels, entity, conds, person))
            span["authz.rows_visible"] = len(out)
            self.stats.rows += len(out)
            if encrypted_columns(model):
                await self._load_keys([v.row for v in out])
        return out

    # -- encrypted fields --------------------------------------------------------------------

    def _ring(self) -> KeyRing:
        if self._keys is None:
            raise RuntimeError("this gate has no key ring: encrypted fields cannot be opened")
        return self._keys

    async def _load_keys(self, rows: Sequence[Any]) -> None:
        """Unwrap the data keys of these rows' owners once per request, in one query."""
        async with self._lock:  # decided inside the lock: concurrent loaders unwrap once
            owners = sorted({r.key_owner for r in rows} - self._deks.keys())
            if not owners or not self._decrypt:
                return
            with self._probe.span("crypto.unwrap", {"crypto.keys_wanted": len(owners)}) as span:
                found = await load_data_keys(self._session, self._ring(), owners)
                span["crypto.keys_unwrapped"] = len(found)
            self.stats.keys_unwrapped += len(found)
            for owner in owners:
                self._deks[owner] = found.get(owner)

    def _open(self, row: Any, attr: str) -> str | None:
        owner = row.key_owner
        self.stats.fields_opened += 1
        if not self._decrypt:
            return _stand_in(row, attr)
        if owner not in self._deks:
            raise RuntimeError(f"data key of {owner} not loaded before opening {attr}")
        return unseal(row, attr, self._deks[owner])

    def plain(self, visible: Visible[Any], attr: str) -> str | None:
        """An encrypted field's current value, for a write that compares or derives from it
        (not a disclosure: nothing leaves the server)."""
        return self._open(visible.row, attr)

    async def seal(self, row: Any, values: dict[str, object]) -> None:
        """Write plain values into a row's encrypted columns, under its owner's data key
        (created on first use). A new row is flushed first: its id is bound into each
        ciphertext. The first seal under an owner in a request locks the owner's key row until
        the request commits, so a re-encryption (``xinqiao keys rotate --data-keys``) cannot
        replace the key between this seal and the commit."""
        if row.id is None:
            await self.flush()
        owner = row.key_owner
        async with self._lock:
            # Under the key row's lock, re-read (the read cache may predate a re-encryption
            # that replaced the key; a seal under it would be unreadable once committed).
            key = await key_for_writing(self._session, self._ring(), owner)
            read = self._deks.get(owner)
            if read is not None and read != key:
                follow_replaced_key(self._session, owner, read, key)
        self._deks[owner] = key
        ring = self._ring()
        seal(row, key, values, index_key=ring.index_key, suite=ring.suite)

    async def seal_pending(self, row: Any) -> None:
        """Seal what a domain method set in the clear on an existing row (a closing reason, a
        dropped follow-up's reason): the column type refuses it otherwise."""
        plain = _take_plain(row)
        if plain:
            await self.seal(row, plain)

    async def erase_person(self, person_id: int, reason: str) -> None:
        """Crypto-shred a person: their data key is destroyed, so every field sealed under it is
        unreadable for good (here and in any backup once the key-encryption key that wrapped it
        is retired), and their blind indexes are cleared so no lookup finds them. What remains is
        the skeleton: that a person and their cases existed, dates, units, risk levels.

        Erasing needs no sight of the record (an administrator handles the request without
        reading it); the grant is checked against the directory."""
        self.authorize(Entity.PERSON, "erase", {Relation.DIRECTORY}, record_id=person_id)
        scoped = {ROW_SCOPE: self.subject.username}
        found = (
            await self._execute(
                select(Person.id).where(Person.id == person_id).execution_options(**scoped)
            )
        ).first()
        if found is None:
            raise NotFound(("id",))
        async with self._lock:
            await destroy_data_key(self._session, f"person:{person_id}")
        # The ciphertexts go too, on every row sealed under the key (their cases, notes,
        # answers...; the rows stay): unreadable already, and a later write about the person
        # then starts a new record under a new key instead of mixing keys in one row.
        for model in sealed_models(Base):
            owned = model.owned_by("person", person_id)
            if owned is None:
                continue
            cleared = [*encrypted_columns(model), *index_columns(model).values()]
            await self._execute(
                update(model)
                .where(owned)
                .values({column: None for column in cleared})
                .execution_options(**scoped)
            )
        self._deks[f"person:{person_id}"] = None
        self.record_write(
            Entity.PERSON,
            person_id,
            ["data_key", "name_index", "id_number_index", "phone_index"],
            f"erase: {reason}"[:100],
            person_id=person_id,
        )

    def blind(self, kind: str, value: str) -> bytes:
        """The blind index of a value, for an exact lookup."""
        ring = self._ring()
        return blind_index(ring.index_key, kind, value, ring.suite)

    def _readable_rows(
        self, model: type[Base], field_class: FieldClass | None
    ) -> ColumnElement[bool] | None:
        """SQL for "this row's ``field_class`` is readable to the subject", or None if it is
        readable on no row. Compiled from the same grants and overlay as ``readable``."""
        if field_class is None:
            return None
        cap = self.subject.class_cap
        if cap is not None and field_class not in cap:
            return None
        entity = entity_of(model)
        if self._policy.unrestricted:
            return true()
        if not class_allowed(self.subject.roles, entity, field_class):
            return None
        relations = self._relations.predicates(entity)
        conditions = self._row_conditions.conditions(entity)
        parts = []
        referral_parts = []
        read_relations = self.subject.read_relations
        for r, c in sorted(self.grants(entity)):
            if r not in relations or (c != ANY and c not in conditions):
                continue
            if read_relations is not None and r not in read_relations:
                continue
            if field_class not in self._policy.readable(
                self.subject.roles, entity, (r,), () if c == ANY else (c,)
            ):
                continue
            part = relations[r] if c == ANY else and_(relations[r], conditions[Condition(c)])
            (referral_parts if r is Relation.REFERRAL else parts).append(part)
        if not parts and not referral_parts:
            return None
        overlay = minor_overlay_sql(self.subject.roles, entity, field_class, relations, conditions)
        others = or_(*parts) if overlay is None else and_(or_(*parts), overlay)
        # What a consented referral shares is readable whatever the overlay says (ADR 0005).
        return or_(others, *referral_parts) if parts else or_(*referral_parts)

    def _conditions(
        self, model: type[Base], filters: Sequence[Filter]
    ) -> list[ColumnElement[bool]]:
        """Filters match only rows where the filtered class is readable: a filter on a class you
        may read on some rows narrows to those rows; on none, it is refused. Otherwise the
        filter would be an inference channel (HAPI FHIR #6065)."""
        conditions: list[ColumnElement[bool]] = []
        for f in filters:
            field_class = f.column.property.columns[0].info.get("field_class")
            readable_rows = self._readable_rows(model, field_class)
            if readable_rows is None:
                if not self.grants(entity_of(model)):
                    continue  # nothing is visible at all: the page is empty anyway
                self._refuse(model, f.column, "筛选", f.field)
            else:
                conditions.append(readable_rows)
            col = f.column
            if f.op == "eq":
                conditions.append(col == f.value)
            elif f.op == "in":
                conditions.append(col.in_(list(f.value)))
            elif f.op == "gte":
                conditions.append(col >= f.value)
            elif f.op == "lt":
                conditions.append(col < f.value)
            elif f.op == "is_null":
                conditions.append(col.is_(None))
            elif f.op == "is_not_null":
                conditions.append(col.is_not(None))
            else:  # pragma: no cover - programming error
                raise ValueError(f"unknown filter op {f.op}")
        return conditions

    def _usable(self, model: type[Base], column: InstrumentedAttribute[Any]) -> bool:
        entity = entity_of(model)
        field_class = column.property.columns[0].info.get("field_class")
        grants = self.grants(entity)
        if not grants:
            return True  # nothing is visible, so there is nothing to infer: the page is empty
        worst = frozenset(OVERLAY_CONDITIONS.get(entity, frozenset()))
        if self.subject.class_cap is not None and field_class not in self.subject.class_cap:
            return False
        if field_class is not None and not class_allowed(self.subject.roles, entity, field_class):
            return False
        return field_class is not None and all(
            field_class in self.readable(entity, frozenset({r}), worst | ({c} - {ANY}))
            for r, c in grants
        )

    def _check_usable(
        self,
        model: type[Base],
        column: InstrumentedAttribute[Any],
        verb: str,
        field: str | None = None,
    ) -> None:
        """Ordering by a class is an inference channel unless that class is readable on every row
        the subject can see (every grant, overlays assumed): refuse it otherwise."""
        if not self._usable(model, column):
            self._refuse(model, column, verb, field)

    def _refuse(
        self,
        model: type[Base],
        column: InstrumentedAttribute[Any],
        verb: str,
        field: str | None = None,
    ) -> NoReturn:
        self._sink.record(
            Disclosure(
                AccessKind.DENIED,
                entity_of(model).value,
                None,
                redacted=(column.key,),
                reason=f"{'filter' if verb == '筛选' else 'order'}_on_unreadable_class",
            )
        )
        raise Forbidden(
            f"无权按该字段{verb}", (field or ("orderBy" if verb == "排序" else column.key),)
        )

    async def page(
        self,
        model: type[M],
        *,
        order: Order,
        first: int,
        after: str | None = None,
        filters: Sequence[Filter] = (),
    ) -> Page[M]:
        """One page in keyset order; ``first`` must already be bounded by the caller."""
        conditions = self._conditions(model, filters)
        pk = inspect(model).primary_key[0]
        order = self.checked_order(model, order)
        if after is not None:
            value, last_id = _decode_cursor(after, order)
            if order.descending:
                conditions.append(
                    or_(order.column < value, (order.column == value) & (pk < last_id))
                )
            else:
                conditions.append(
                    or_(order.column > value, (order.column == value) & (pk > last_id))
                )
        stmt = self._scoped(model, *conditions)
        if stmt is None:
            return Page([], False, after is not None)
        direction = (lambda c: c.desc()) if order.descending else (lambda c: c.asc())
        stmt = stmt.order_by(direction(order.column), direction(pk)).limit(first + 1)
        items = await self._rows(model, stmt)
        has_next = len(items) > first
        items = items[:first]
        cursors = [
            _encode_cursor(order, getattr(v.row, order.column.key), getattr(v.row, pk.key))
            for v in items
        ]
        return Page(items, has_next, after is not None, cursors, order.column.key)

    def checked_order(self, model: type[Base], order: Order) -> Order:
        """The order a page will use: an explicit order on a class not readable under every
        grant is refused (it would rank rows by what the subject cannot see); the default one
        falls back to the record key."""
        if order.default and not self._usable(model, order.column):
            return Order(inspect(model).primary_key[0], order.descending)  # type: ignore[arg-type]
        self._check_usable(model, order.column, "排序", "orderBy")
        return order

    async def count(self, model: type[Base], *, filters: Sequence[Filter] = ()) -> int:
        """Visible rows only: a total never reveals hidden records."""
        conditions = self._conditions(model, filters)
        if self._plan(model) is None:
            return 0
        stmt = (
            select(func.count())
            .select_from(model)
            .where(self._visible_predicate(model), *conditions)
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        return int((await self._execute(stmt)).scalar_one())

    async def by_ids(
        self, model: type[M], ids: Sequence[int], *, log_misses: bool = True
    ) -> dict[int, Visible[M]]:
        """Visible rows among ``ids``. Misses are logged the same whether missing or hidden."""
        pk = inspect(model).primary_key[0]
        wanted = set(ids)
        stmt = self._scoped(model, pk.in_(wanted))
        found = {} if stmt is None else {v.row.id: v for v in await self._rows(model, stmt)}  # type: ignore[attr-defined]
        self.stats.rows_withheld += len(wanted) - len(found)
        for missing in sorted(wanted - found.keys()) if log_misses else ():
            entity = entity_of(model)
            self._sink.record(
                Disclosure(
                    AccessKind.DENIED,
                    entity.value,
                    missing,
                    reason="not_found",
                    person_id=missing if entity is Entity.PERSON else None,
                )
            )
        return found

    async def children(
        self,
        model: type[M],
        parent_key: InstrumentedAttribute[int],
        parent_ids: Sequence[int],
        *,
        order: Order,
        limit: int,
    ) -> dict[int, list[Visible[M]]]:
        """Up to ``limit`` visible children per parent, in one statement for all parents."""
        grouped: dict[int, list[Visible[M]]] = defaultdict(list)
        plan = self._plan(model)
        if plan is None or not parent_ids:
            return grouped
        visible_rows, flags = plan
        pk = inspect(model).primary_key[0]
        direction = (lambda c: c.desc()) if order.descending else (lambda c: c.asc())
        ranked = (
            select(
                pk.label("child_id"),
                func.row_number()
                .over(partition_by=parent_key, order_by=(direction(order.column), direction(pk)))
                .label("rn"),
            )
            .where(parent_key.in_(set(parent_ids)), visible_rows)
            .subquery()
        )
        # The ranked rows are already the visible ones: the outer query only adds the flags.
        stmt = (
            select(model, *flags)
            .join(ranked, ranked.c.child_id == pk)
            .where(ranked.c.rn <= limit)
            .order_by(parent_key, direction(order.column), direction(pk))
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        for visible in await self._rows(model, stmt):
            grouped[getattr(visible.row, parent_key.key)].append(visible)
        return grouped

    # -- revealing fields --------------------------------------------------------------------

    def reveal(self, visible: Visible[Any], fields: Iterable[str]) -> Revealed:
        """Values of the requested fields that the subject may read; the rest are redacted.

        Only requested fields are computed (and, later, decrypted), and the disclosure names
        exactly what left the server.
        """
        classes = field_classes(type(visible.row))
        readable = self.readable(visible.entity, visible.relations, visible.conditions)
        values: dict[str, Any] = {}
        redacted: list[str] = []
        disclosed: set[str] = set()
        sealed = encrypted_columns(type(visible.row))
        derived = getattr(type(visible.row), "derived_from", {})
        for name in fields:
            field_class = classes.get(name)
            if field_class is None:
                continue
            if field_class not in readable:
                redacted.append(name)
                continue
            if name in sealed:
                value = self._open(visible.row, name)
                if value is not None and name in visible.row.opened_as:
                    value = visible.row.opened_as[name](value)
            elif name in derived:
                source, derive = derived[name]
                value = derive(self._open(visible.row, source))
            else:
                value = getattr(visible.row, name)
            if name == "sensitive_categories":
                value, withheld = visible_categories(self.subject.roles, visible.conditions, value)
                if withheld:
                    redacted.append(name)
            values[name] = value
            disclosed.add(field_class.value)
        if visible.entity in NON_PERSONAL:
            return Revealed(values, tuple(redacted))
        self._sink.record(
            Disclosure(
                AccessKind.READ,
                visible.entity.value,
                visible.row.id,
                fields=tuple(sorted(values)),
                redacted=tuple(redacted),
                field_classes=tuple(sorted(disclosed)),
                relations=tuple(sorted(visible.relations)),
                person_id=visible.person_id,
            )
        )
        return Revealed(values, tuple(redacted))

    # -- writing ---------------------------------------------------------------------------

    async def require(self, model: type[M], record_id: int, field: str) -> Visible[M]:
        """A record a write refers to (a subject, a family, a worker): NotFound at ``field``
        when missing or not visible."""
        visible = (await self.by_ids(model, [record_id])).get(record_id)
        if visible is None:
            raise NotFound((field,))
        return visible

    def knows(self, visible: Visible[Any], field_class: FieldClass = FieldClass.IDENTITY) -> bool:
        """Whether the subject may read ``field_class`` of this record: a write must not give
        its writer (or others) access to a person the writer cannot even identify."""
        return field_class in self.readable(visible.entity, visible.relations, visible.conditions)

    def merge_categories(
        self, visible: Visible[Any], before: set[Any], requested: set[Any]
    ) -> set[Any]:
        """The categories after an update: non-sensitive ones as requested; sensitive ones the
        subject owns (and may read) as requested; every other sensitive one kept as it was — an
        update never erases, or plants, a category its author may not see."""
        readable = self.readable(visible.entity, visible.relations, visible.conditions)
        owned: set[Any] = set()
        if FieldClass.SENSITIVE_CATEGORY in readable:
            owned = {
                c
                for c in before | requested
                if visible_categories(self.subject.roles, visible.conditions, [c])[0]
            }
        plain_before = {c for c in before if not c.sensitive}
        kept = {c for c in before if c.sensitive and c not in owned}
        chosen = {c for c in requested if not c.sensitive or c in owned}
        if FieldClass.BASIC not in readable:  # cannot see the plain ones either: keep them
            chosen = {c for c in chosen if c.sensitive} | plain_before
        return kept | chosen

    async def route_team(self, area_unit_id: int, risk: str) -> tuple[int, list[int]]:
        """Lead and co-handling units for a case by risk tier (seed 001 item 2): high → the
        police station, the health centre and the community of the person's residence, jointly
        (the police station leads); medium → the comprehensive-governance centre; low → the
        community grid. Units are not personal data; this reads only the organisation tree."""
        area = await self.unit(area_unit_id)
        if area is None:
            raise NotFound(("subject",))
        if risk == "low":
            return area.id, []
        ancestors = [int(x) for x in area.path.strip("/").split("/") if x]
        units = (
            await self._execute(select(Unit.id, Unit.kind, Unit.area_unit_id).order_by(Unit.id))
        ).all()

        def serving(kind: UnitKind) -> int | None:
            # the unit of that kind serving the nearest ancestor of the area
            for ancestor in reversed(ancestors):
                for unit_id, unit_kind, serves in units:
                    if unit_kind == kind and serves == ancestor:
                        return int(unit_id)
            return next((int(u) for u, k, _ in units if k == kind), None)

        if risk == "medium":
            return serving(UnitKind.GOVERNANCE_CENTRE) or area.id, []
        community = next(
            (
                a
                for a in reversed(ancestors)
                for u, k, _ in units
                if u == a and k == UnitKind.COMMUNITY
            ),
            area.id,
        )
        police = serving(UnitKind.POLICE_STATION) or area.id
        health = serving(UnitKind.HEALTH_CENTRE)
        return police, [u for u in (health, community) if u is not None and u != police]

    async def set_case_team(self, case: Visible[Any], lead: int, co_units: list[int]) -> list[int]:
        """Hand a case to a new team: lead and co-handling units replaced, active assignments
        ended (their access ends with them). Returns the staff ids whose assignment ended."""
        row = case.row
        scoped = {ROW_SCOPE: self.subject.username}
        ended = (
            (
                await self._execute(
                    select(CaseAssignment.staff_id)
                    .where(CaseAssignment.case_id == row.id, CaseAssignment.ended_at.is_(None))
                    .execution_options(**scoped)
                )
            )
            .scalars()
            .all()
        )
        await self._execute(
            update(CaseAssignment)
            .where(CaseAssignment.case_id == row.id, CaseAssignment.ended_at.is_(None))
            .values(ended_at=self.now)
            .execution_options(**scoped)
        )
        await self._execute(
            delete(CaseCoUnit).where(CaseCoUnit.case_id == row.id).execution_options(**scoped)
        )
        for unit_id in co_units:
            self.add(CaseCoUnit(case_id=row.id, unit_id=unit_id))
        row.lead_unit_id = lead
        await self.flush()
        return list(ended)

    async def end_case_access(self, case: Visible[Case]) -> None:
        """Closing a case ends what was granted for it: its referrals (offered or accepted) and
        any break-glass grant still running. Reopening it brings neither back; each end is
        logged (ADR 0005)."""
        scoped = {ROW_SCOPE: self.subject.username}
        running = list(
            (
                await self._execute(
                    select(EmergencyGrant.id)
                    .where(EmergencyGrant.case_id == case.row.id)
                    .where(EmergencyGrant.expires_at > self.now)
                    .execution_options(**scoped)
                )
            )
            .scalars()
            .all()
        )
        if running:
            await self._execute(
                update(EmergencyGrant)
                .where(EmergencyGrant.id.in_(running))
                .values(expires_at=self.now)
                .execution_options(**scoped)
            )
        for grant_id in running:
            self.record_write(
                Entity.EMERGENCY_GRANT,
                grant_id,
                ["expires_at"],
                "case_closed",
                person_id=case.person_id,
            )
        await self._end_referrals(case)

    async def _end_referrals(self, case: Visible[Case]) -> None:
        scoped = {ROW_SCOPE: self.subject.username}
        live = Referral.status.in_([ReferralStatus.OFFERED, ReferralStatus.ACCEPTED])
        ended = list(
            (
                await self._execute(
                    select(Referral.id)
                    .where(Referral.case_id == case.row.id, live)
                    .execution_options(**scoped)
                )
            )
            .scalars()
            .all()
        )
        if ended:
            await self._execute(
                update(Referral)
                .where(Referral.id.in_(ended))
                .values(status=ReferralStatus.CLOSED)
                .execution_options(**scoped)
            )
        for referral_id in ended:
            self.record_write(
                Entity.REFERRAL, referral_id, ["status"], "case_closed", person_id=case.person_id
            )

    async def _conditions_holding(self, model: type[Base], record_id: int) -> frozenset[str]:
        """Every row condition that holds for one record, whoever is asking (``Visible``
        carries only the conditions the subject's own grants mention)."""
        conditions = self._row_conditions.conditions(entity_of(model))
        if not conditions:
            return frozenset()
        names = sorted(conditions)
        stmt = (
            select(*(conditions[c].label(f"cond_{c.value}") for c in names))
            .select_from(model)
            .where(model.id == record_id)  # type: ignore[attr-defined]
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        row = (await self._execute(stmt)).first()
        if row is None:
            return frozenset()
        return frozenset(c.value for c, held in zip(names, row, strict=True) if held)

    async def assign_worker(self, case: Visible[Case], staff_id: int, roles: Iterable[Role]) -> int:
        """Put a staff member on a case; returns the assignment id.

        An assignment is itself an access grant (the ``assigned`` relation), so it is only made
        for someone the policy lets work this case once assigned — a role with an ``assigned``
        grant on the case at its risk conditions. Otherwise the assigner could hand the record
        to any account (a volunteer, a partner, the police on a medium-risk case). Assigning a
        worker who is already on the case is refused rather than stacked. The write is logged.
        """
        if (
            self._policy.permitting_relation(
                roles,
                Entity.CASE,
                "read:case_admin",
                {Relation.ASSIGNED},
                await self._conditions_holding(Case, case.row.id),
            )
            is None
        ):
            raise DomainError(ErrorCode.INVALID, "该工作人员的角色不能承办此类个案", ("staff",))
        scoped = {ROW_SCOPE: self.subject.username}
        already = await self._execute(
            select(CaseAssignment.id)
            .where(
                CaseAssignment.case_id == case.row.id,
                CaseAssignment.staff_id == staff_id,
                CaseAssignment.ended_at.is_(None),
            )
            .execution_options(**scoped)
        )
        if already.first() is not None:
            raise DomainError(ErrorCode.DUPLICATE, "该工作人员已在本个案上", ("staff",))
        return await self.insert(
            CaseAssignment(case_id=case.row.id, staff_id=staff_id, assigned_at=self.now),
            ["staff_id"],
            "assign",
            person_id=case.person_id,
        )

    async def for_write(self, model: type[M], record_id: int, action: str) -> Visible[M]:
        """Load a record to change it.

        Not visible → NotFound; visible but the action not allowed → Forbidden.
        """
        visible = (await self.by_ids(model, [record_id])).get(record_id)
        if visible is None:
            raise NotFound()
        self.authorize(
            visible.entity, action, visible.relations, visible.conditions, record_id=record_id
        )
        return visible

    def authorize(
        self,
        entity: Entity,
        action: str,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
        *,
        record_id: int | None = None,
    ) -> Relation:
        relation = self.may(entity, action, relations, conditions)
        if relation is None:
            self._sink.record(Disclosure(AccessKind.DENIED, entity.value, record_id, reason=action))
            raise Forbidden()
        return relation

    async def break_glass(self, case_id: int, *, reason: str, duration: timedelta) -> int:
        """Open an emergency grant on one case in the subject's jurisdiction (紧急访问).

        Authorization comes first, so a role that may not break glass learns nothing about
        whether the case exists. The grant and every disclosure under it are logged.
        """
        self.authorize(Entity.CASE, "break_glass", {Relation.JURISDICTION}, record_id=case_id)
        EmergencyGrant.check(reason=reason, duration=duration)  # before the lookup: no oracle
        in_area = self._relations.predicates(Entity.CASE)[Relation.JURISDICTION]
        stmt = (
            select(Case.id, Case.subject_id)
            .where(Case.id == case_id, in_area)
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        found = (await self._execute(stmt)).first()
        if found is None:
            self._sink.record(
                Disclosure(AccessKind.DENIED, Entity.CASE.value, case_id, reason="break_glass")
            )
            raise NotFound(("case",))
        assert self.subject.staff_id is not None
        grant = EmergencyGrant.open(
            case_id=case_id,
            staff_id=self.subject.staff_id,
            reason=reason,
            at=self.now,
            duration=duration,
        )
        self.add(grant)
        await self.flush()
        self._sink.record(
            Disclosure(
                AccessKind.WRITE,
                Entity.EMERGENCY_GRANT.value,
                grant.id,
                fields=("case_id", "expires_at", "reason"),
                relations=(Relation.EMERGENCY.value,),
                reason="break_glass",
                person_id=found.subject_id,
            )
        )
        return grant.id

    async def lookup_persons(
        self, *, id_number: str | None, phone: str | None, limit: int = 10
    ) -> list[LookupHit]:
        """Search is not browsing: an exact lookup (to avoid duplicates at intake) may confirm
        that a person exists outside the subject's relations and show basic fields only. Each
        hit is logged as a search."""
        self.authorize(Entity.PERSON, "search", {Relation.DIRECTORY})
        if id_number is None and phone is None:
            return []
        p = Person
        match = (
            p.id_number_index == self.blind("id_number", id_number)
            if id_number is not None
            else p.phone_index == self.blind("phone", phone or "")
        )
        stmt = (
            select(p)
            .where(match)
            .order_by(p.id)
            .limit(limit)
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        rows = list((await self._execute(stmt)).scalars().all())
        await self._load_keys(rows)
        visible = await self.by_ids(p, [r.id for r in rows], log_misses=False)
        hits: list[LookupHit] = []
        by = "id_number" if id_number is not None else "phone"
        for r in rows:
            basic = {
                "masked_name": mask_name(self._open(r, "name")),
                "gender": r.gender,
                "age_band": age_band_of(self._open(r, "birth_date")),
                "residence_unit_id": r.residence_unit_id,
            }
            self._sink.record(
                Disclosure(
                    AccessKind.SEARCH,
                    Entity.PERSON.value,
                    r.id,
                    fields=tuple(sorted(basic)),
                    field_classes=(FieldClass.BASIC.value,),
                    relations=tuple(sorted(visible[r.id].relations)) if r.id in visible else (),
                    reason=f"lookup_by_{by}",
                    person_id=r.id,
                )
            )
            hits.append(LookupHit(r.id, visible.get(r.id), basic))
        return hits

    async def lookup_students(self, id_numbers: Sequence[str]) -> dict[str, int]:
        """ID number → person, for students of the subject's own school only (a screening import).

        A number that belongs to another school's student, or to nobody, is simply absent: the
        importer learns nothing about persons outside their school. Each hit is logged as a
        search, as at intake.
        """
        self.authorize(Entity.PERSON, "search", {Relation.DIRECTORY})
        school = self.subject.unit_id
        if school is None or not id_numbers:
            return {}
        found: dict[str, int] = {}
        by_index = {self.blind("id_number", n): n for n in set(id_numbers)}
        indexes = sorted(by_index)
        for start in range(0, len(indexes), 500):  # bound the IN list on every backend
            stmt = (
                select(Person.id, Person.id_number_index)
                .where(Person.id_number_index.in_(indexes[start : start + 500]))
                .where(Person.school_unit_id == school)
                .execution_options(**{ROW_SCOPE: self.subject.username})
            )
            rows = (await self._execute(stmt)).all()
            found.update({by_index[r.id_number_index]: r.id for r in rows})
        for person_id in sorted(found.values()):
            self._sink.record(
                Disclosure(
                    AccessKind.SEARCH,
                    Entity.PERSON.value,
                    person_id,
                    fields=("id",),
                    field_classes=(FieldClass.BASIC.value,),
                    relations=(Relation.SCHOOL.value,),
                    reason="screening_import_match",
                    person_id=person_id,
                )
            )
        return found

    async def screening_aggregates(
        self, campaign: Visible[ScreeningCampaign], small_cell: int
    ) -> tuple[list[GradeRow], GradeRow]:
        """A campaign's per-grade counts, for a subject who may read its statistics: counted over
        every result (rows the subject could never see), so they leave only suppressed
        (``domain.screening.suppressed_table``). No person is named; logged as a campaign read."""
        if FieldClass.CASE_ADMIN not in self.readable(
            campaign.entity, campaign.relations, campaign.conditions
        ):
            raise Forbidden()
        a = Assessment
        over = (a.score >= campaign.row.threshold).label("over")
        stmt = (
            select(a.grade, a.severity, over, func.count())
            .where(a.campaign_id == campaign.row.id)
            .group_by(a.grade, a.severity, over)
            .execution_options(**{ROW_SCOPE: self.subject.username})
        )
        rows = (await self._execute(stmt)).all()
        self._sink.record(
            Disclosure(
                AccessKind.READ,
                campaign.entity.value,
                campaign.row.id,
                fields=("aggregates",),
                field_classes=(FieldClass.CASE_ADMIN.value,),
                relations=tuple(sorted(campaign.relations)),
                reason="aggregate",
            )
        )
        tallies = [Tally(grade or 0, band, bool(hit), int(n)) for grade, band, hit, n in rows]
        bands = [
            BandSpan(b.label, b.low, b.high) for b in DEFINITIONS[campaign.row.instrument].bands
        ]
        return suppressed_table(tallies, bands, campaign.row.threshold, small_cell)

    async def new_record_relations(
        self, *, area_unit_id: int, school_unit_id: int | None = None
    ) -> frozenset[Relation]:
        """Relations the subject will hold to a record that does not exist yet, from where it is
        anchored: its area (jurisdiction) and, for students, its school."""
        unit = await self.unit(area_unit_id)
        if unit is None:
            raise NotFound(("areaUnit",))
        relations: set[Relation] = set()
        path = self.subject.jurisdiction_path
        if path and unit.path.startswith(path):
            relations.add(Relation.JURISDICTION)
        if school_unit_id is not None and school_unit_id == self.subject.unit_id:
            relations.add(Relation.SCHOOL)
        return frozenset(relations)

    async def unit(self, unit_id: int) -> Unit | None:
        """Units are not personal data; any authenticated subject may resolve one."""
        if not self.subject.authenticated:
            return None
        return (await self._execute(select(Unit).where(Unit.id == unit_id))).scalar_one_or_none()

    def add(self, row: Base) -> None:
        self._session.add(row)

    async def insert(
        self,
        row: Base,
        fields: Iterable[str],
        action: str = "create",
        *,
        person_id: int | None = None,
    ) -> int:
        """Add a row and log the write in one step, so an insert cannot go unrecorded. Plain
        values in its encrypted columns are sealed as soon as it has an id (before any of them
        can reach the database)."""
        plain = _take_plain(row)
        self.add(row)
        await self.flush()
        if plain:
            await self.seal(row, plain)
        record_id: int = row.id  # type: ignore[attr-defined]
        self.record_write(entity_of(type(row)), record_id, fields, action, person_id=person_id)
        return record_id

    async def insert_many(
        self, rows: Sequence[Base], fields: Iterable[str], action: str, person_ids: Sequence[int]
    ) -> list[int]:
        """Many rows in one flush (an import), each write logged with its person, plain values
        sealed as ``insert`` does (each owner's key is read once, under its row lock, by the
        first seal; a read-side preload would only unwrap the same keys a second time)."""
        plain = [_take_plain(row) for row in rows]
        for row in rows:
            self.add(row)
        await self.flush()
        for row, values in zip(rows, plain, strict=True):
            if values:
                await self.seal(row, values)
        names = tuple(fields)
        out: list[int] = []
        for row, person_id in zip(rows, person_ids, strict=True):
            record_id: int = row.id  # type: ignore[attr-defined]
            self.record_write(entity_of(type(row)), record_id, names, action, person_id=person_id)
            out.append(record_id)
        return out

    async def flush(self) -> None:
        async with self._lock:
            await self._session.flush()

    def record_write(
        self,
        entity: Entity,
        record_id: int | None,
        fields: Iterable[str],
        action: str,
        *,
        person_id: int | None = None,
        changes: dict[str, tuple[object, object]] | None = None,
    ) -> None:
        """Log a write: field names, and (for updates) before/after values the log hashes."""
        self._sink.record(
            Disclosure(
                AccessKind.WRITE,
                entity.value,
                record_id,
                fields=tuple(sorted(fields)),
                reason=action,
                person_id=person_id,
                changes=changes,
            )
        )


# -- cursors -----------------------------------------------------------------------------------


def _encode_cursor(order: Order, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, Enum):
        value = value.value
    raw = json.dumps([order.key, value, row_id], ensure_ascii=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, order: Order) -> tuple[Any, int]:
    bad = DomainError(ErrorCode.INVALID, "分页游标无效，请从第一页重新查询", ("after",))
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise bad from None
    if key != order.key or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise bad
    column_type = order.column.property.columns[0].type
    if (
        isinstance(column_type, DateTime)
        or getattr(column_type, "impl", None).__class__ is DateTime
    ):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
        if value.tzinfo is None:
            raise bad
    elif not isinstance(value, str | int) or isinstance(value, bool):
        raise bad
    return value, row_id


def _take_plain(row: Any) -> dict[str, object]:
    """Take the plain values out of a row's encrypted columns (leaving them empty), to seal."""
    plain: dict[str, object] = {}
    for attr in encrypted_columns(type(row)):
        value = getattr(row, attr)
        if value is not None and not isinstance(value, bytes):
            plain[attr] = value
            setattr(row, attr, None)
    return plain


def _stand_in(row: Any, attr: str) -> str | None:
    """The benchmark's unprotected mode: text as long as the sealed value, never the value."""
    sealed = getattr(row, attr)
    if sealed is None or attr in row.opened_as:
        return None
    return "x" * max(0, len(sealed) - 38)  # header, nonce and tag (domain.encryption)
