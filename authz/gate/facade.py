"""The privacy gate: the one enforcement point between the API and the data.

A ``Gate`` is built once per request for one subject and owns that request's session. It only
enforces; what a use case *means* (routing a case, breaking glass, importing a screening) lives
in ``api.services`` and ``domain``, which ask the gate for rows, fields and permits:

* **rows**: reads start from the subject's relations compiled to SQL (``plans``); a record
  outside them is indistinguishable from a missing one (``reading``);
* **fields**: ``reveal`` decides each field class once per (entity, relations, conditions) per
  request (``decisions``) and opens sealed fields only when they may leave (``sealer``);
* **writes**: ``authorize`` and ``for_write`` issue a ``Permit``; adding, sealing, updating and
  logging a write require one, and the session refuses an unpermitted or unlogged protected
  write (``writes``);
* **disclosure**: every reveal, miss, search and write is handed to the access log sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Executable, delete, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from authz.acting import acting_units, duty_unit
from authz.actions import Action, policy_action
from authz.entities import Entity, entity_of
from authz.gate.db import Db
from authz.gate.decisions import Decisions
from authz.gate.lookups import Lookups
from authz.gate.plans import Plans
from authz.gate.reading import Reader
from authz.gate.reveal import reveal
from authz.gate.sealer import Sealer, take_plain
from authz.gate.types import (
    Filter,
    Forbidden,
    Found,
    GateStats,
    M,
    Order,
    Page,
    Permit,
    Revealed,
    Visible,
    Writable,
    issue_permit,
)
from authz.gate.writes import ledger_of
from authz.policy import Policy
from authz.probe import NO_PROBE, Probe
from authz.relations import Relation
from authz.subject import StaffMember, Subject
from domain.base import Base
from domain.classification import FieldClass, written_fields
from domain.disclosure import AccessKind, Disclosure, DisclosureSink
from domain.errors import NotFound
from domain.keys import KeyRing
from domain.staff import Role, Staff, StaffRole
from domain.units import Unit

SealerFactory = type[Sealer]


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
        sealer: SealerFactory = Sealer,
    ) -> None:
        self.subject = subject
        self.now = now or datetime.now(UTC)
        self.stats = GateStats()
        """Counts for this request's operation span (decisions, rows, keys, fields opened)."""
        self._sink = sink
        self._db = Db(session)
        self.decisions = Decisions(subject, policy, self.stats)
        self._plans = Plans(self.decisions, self.now)
        self._sealer = sealer(self._db, keys, self.stats, probe)
        self._reader = Reader(
            self._db, self.decisions, self._plans, self._sealer, sink, self.stats, probe
        )
        self._lookups = Lookups(
            self._db, self.decisions, self._plans, self._sealer, self._reader, sink
        )

    def staff(self) -> StaffMember:
        """The staff member asking; a partner client or anonymous subject is refused."""
        me = self.subject.as_staff()
        if me is None:
            self._sink.record(Disclosure(AccessKind.DENIED, "staff_only", None, reason="not_staff"))
            raise Forbidden("仅工作人员可执行该操作")
        return me

    # -- decisions ----------------------------------------------------------------------------

    def readable(
        self,
        entity: Entity,
        relations: frozenset[Relation],
        conditions: frozenset[str] = frozenset(),
    ) -> frozenset[FieldClass]:
        return self.decisions.readable(entity, relations, conditions)

    def knows(self, visible: Visible[Any], field_class: FieldClass = FieldClass.IDENTITY) -> bool:
        return self.decisions.knows(visible, field_class)

    # -- reading ------------------------------------------------------------------------------

    async def page(
        self,
        model: type[M],
        *,
        order: Order,
        first: int,
        after: str | None = None,
        filters: Sequence[Filter] = (),
    ) -> Page[M]:
        return await self._reader.page(
            model, order=order, first=first, after=after, filters=filters
        )

    def checked_order(self, model: type[Base], order: Order) -> Order:
        return self._reader.checked_order(model, order)

    async def count(self, model: type[Base], *, filters: Sequence[Filter] = ()) -> int:
        return await self._reader.count(model, filters=filters)

    async def by_ids(
        self, model: type[M], ids: Sequence[int], *, log_misses: bool = True
    ) -> dict[int, Visible[M]]:
        return await self._reader.by_ids(model, ids, log_misses=log_misses)

    async def children(
        self,
        model: type[M],
        parent_key: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
        parent_ids: Sequence[int],
        *,
        order: Order,
        limit: int,
    ) -> dict[int, list[Visible[M]]]:
        return await self._reader.children(model, parent_key, parent_ids, order=order, limit=limit)

    async def require(self, model: type[M], record_id: int, field: str) -> Visible[M]:
        """A record a write refers to: NotFound at ``field`` when missing or not visible."""
        visible = (await self.by_ids(model, [record_id])).get(record_id)
        if visible is None:
            raise NotFound((field,))
        return visible

    def reveal(self, visible: Visible[Any], fields: Iterable[str]) -> Revealed:
        return reveal(
            visible, fields, decisions=self.decisions, sealer=self._sealer, sink=self._sink
        )

    def plain(self, visible: Visible[Any], attr: str) -> Any:
        """An encrypted field's current value, for a write that compares or derives from it
        (not a disclosure: nothing leaves the server)."""
        return self._sealer.open(visible.row, attr)

    def blind(self, kind: str, value: str) -> bytes:
        """The blind index of a value, for an exact lookup (``search``)."""
        return self._sealer.blind(kind, value)

    # -- permits ------------------------------------------------------------------------------

    def authorize(
        self,
        entity: Entity,
        action: Action,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
        *,
        qualifier: str | None = None,
        record_id: int | None = None,
        person_id: int | None = None,
    ) -> Permit:
        """A permit for ``action`` under the first relation that allows it; a denial is logged
        and raised as Forbidden."""
        relation = self.decisions.permitting(
            entity, policy_action(action, qualifier), relations, conditions
        )
        if relation is None:
            reason = policy_action(action, qualifier)
            self._sink.record(Disclosure(AccessKind.DENIED, entity.value, record_id, reason=reason))
            raise Forbidden()
        return issue_permit(entity, action, relation, record_id=record_id, person_id=person_id)

    async def for_write(
        self, model: type[M], record_id: int, action: Action = Action.UPDATE
    ) -> Writable[M]:
        """Load a record to change it: not visible → NotFound; visible but the action not
        allowed → Forbidden. The row is registered under the permit for the flush check."""
        visible = (await self.by_ids(model, [record_id])).get(record_id)
        if visible is None:
            raise NotFound()
        permit = self.authorize(
            visible.entity,
            action,
            visible.relations,
            visible.conditions,
            record_id=record_id,
            person_id=visible.person_id,
        )
        self._ledger().permit(visible.row, permit)
        return Writable(visible, permit)

    # -- writing ------------------------------------------------------------------------------

    def _ledger(self) -> Any:
        return ledger_of(self._db.session.sync_session)

    def add(self, permit: Permit, row: Base) -> None:
        """Add a row under a permit (its write must still be logged before commit)."""
        self._ledger().permit(row, permit)
        self._db.session.add(row)

    async def seal(self, permit: Permit, row: Base, values: Mapping[str, object]) -> None:
        self._ledger().permit(row, permit)
        await self._sealer.seal(row, dict(values))

    async def seal_pending(self, permit: Permit, row: Base) -> None:
        self._ledger().permit(row, permit)
        await self._sealer.seal_pending(row)

    async def insert(
        self,
        permit: Permit,
        row: Base,
        fields: Iterable[str] | None = None,
        action: str = "create",
        *,
        person_id: int | None = None,
        sealed: Mapping[str, object] | None = None,
    ) -> int:
        """Add a row and log the write in one step. Plain values in its encrypted columns are
        sealed as soon as it has an id (before any of them can reach the database). Without
        ``fields``, the write names every classified attribute that holds a value."""
        ids = await self.insert_many(permit, [row], fields, action, [person_id], [sealed or {}])
        return ids[0]

    async def insert_many(
        self,
        permit: Permit,
        rows: Sequence[Base],
        fields: Iterable[str] | None,
        action: str,
        person_ids: Sequence[int | None],
        sealed: Sequence[Mapping[str, object]] = (),
    ) -> list[int]:
        """Many rows in one flush (an import), each write logged with its person, plain values
        sealed as ``insert`` does (each owner's key is read once, under its row lock)."""
        plain = [take_plain(row) for row in rows]
        for values, extra in zip(plain, sealed, strict=False):
            values.update({k: v for k, v in extra.items() if v is not None})
        for row in rows:
            self.add(permit, row)
        await self.flush()
        for row, values in zip(rows, plain, strict=True):
            if values:
                await self._sealer.seal(row, values)
        names = None if fields is None else tuple(fields)
        for row, person_id in zip(rows, person_ids, strict=True):
            written = written_fields(row) if names is None else names
            self.wrote(permit, row, written, action, person_id=person_id)
        return [_id(row) for row in rows]

    def wrote(
        self,
        permit: Permit,
        row: Base,
        fields: Iterable[str],
        action: str,
        *,
        person_id: int | None = None,
        changes: dict[str, tuple[object, object]] | None = None,
        relations: tuple[str, ...] = (),
    ) -> None:
        """Log a write of one row the request changed (field names; for updates, before/after
        values the log hashes; the relation it was made under, when it is not the usual)."""
        ledger = self._ledger()
        ledger.permit(row, permit)
        ledger.logged(row)
        entity = entity_of(type(row))
        if entity is Entity.PERSON and person_id is None:
            person_id = _id(row)  # a person's own record is about that person
        self._record(permit, entity, _id(row), fields, action, person_id, changes, relations)

    def record_write(
        self,
        permit: Permit,
        entity: Entity,
        record_id: int | None,
        fields: Iterable[str],
        action: str,
        *,
        person_id: int | None = None,
        changes: dict[str, tuple[object, object]] | None = None,
    ) -> None:
        """Log a write that is not one ORM row (a bulk statement, a key destroyed)."""
        self._record(permit, entity, record_id, fields, action, person_id, changes, ())

    def _record(
        self,
        permit: Permit,
        entity: Entity,
        record_id: int | None,
        fields: Iterable[str],
        action: str,
        person_id: int | None,
        changes: dict[str, tuple[object, object]] | None,
        relations: tuple[str, ...],
    ) -> None:
        if not isinstance(permit, Permit):
            raise TypeError("a write needs the permit the gate issued for it")
        self._sink.record(
            Disclosure(
                AccessKind.WRITE,
                entity.value,
                record_id,
                fields=tuple(sorted(fields)),
                relations=relations,
                reason=action,
                person_id=person_id,
                changes=changes,
            )
        )

    async def rows_where(
        self,
        permit: Permit,
        model: type[Base],
        *where: ColumnElement[bool],
        columns: Sequence[InstrumentedAttribute[Any]] = (),
    ) -> list[tuple[Any, ...]]:
        """(id, *columns) of the rows a permitted write must check or change, whether or not
        the subject may read them (a duplicate assignment, a case's running grants). Nothing
        here leaves the server."""
        pk = inspect(model).primary_key[0]
        found = await self._db.execute(self._plans.scope(select(pk, *columns).where(*where)))
        return [tuple(r) for r in found.all()]

    async def update_rows(
        self,
        permit: Permit,
        model: type[Base],
        *where: ColumnElement[bool],
        values: dict[str, object],
        returning: Sequence[InstrumentedAttribute[Any]] = (),
    ) -> list[tuple[Any, ...]]:
        """A bulk change that follows from a permitted write (closing a case ends its grants).
        Returns (id, *returning) of each changed row; the caller logs each with ``record_write``
        under the same permit."""
        rows = await self.rows_where(permit, model, *where, columns=returning)
        if rows:
            stmt = update(model).where(*where).values(values)
            await self._db.execute(self._plans.scope(stmt))
        return rows

    async def delete_rows(
        self, permit: Permit, model: type[Base], *where: ColumnElement[bool]
    ) -> None:
        """Delete rows that follow from a permitted write (a case's co-handling units)."""
        await self._db.execute(self._plans.scope(delete(model).where(*where)))

    async def flush(self) -> None:
        await self._db.flush()

    # -- beyond the subject's relations, under a permit ---------------------------------------

    async def locate(self, permit: Permit, model: type[Base], record_id: int, field: str) -> Any:
        return await self._lookups.locate(permit, model, record_id, field)

    async def search(
        self,
        permit: Permit,
        model: type[Base],
        match: ColumnElement[bool],
        *,
        opens: Sequence[str] = (),
        shown: Sequence[str],
        reason: str,
        limit: int,
        relations: Sequence[str] | None = None,
    ) -> list[Found]:
        return await self._lookups.search(
            permit,
            model,
            match,
            opens=opens,
            shown=shown,
            reason=reason,
            limit=limit,
            relations=relations,
        )

    async def aggregate(
        self, parent: Visible[Any], field_class: FieldClass, stmt: Executable
    ) -> list[Any]:
        return await self._lookups.aggregate(parent, field_class, stmt)

    async def conditions_of(self, model: type[Base], record_id: int) -> frozenset[str]:
        return await self._lookups.conditions_of(model, record_id)

    async def erase(self, permit: Permit, kind: str, owner_id: int) -> None:
        """Crypto-shred an owner's sealed fields (``Sealer.shred``), under an erase permit."""
        if permit.action is not Action.ERASE or permit.record_id != owner_id:
            raise TypeError("erasure needs an erase permit for this very owner")
        await self._sealer.shred(kind, owner_id, self._plans.scope)

    # -- the organisation tree (not personal data) --------------------------------------------

    async def unit(self, unit_id: int) -> Unit | None:
        """Units are not personal data; any authenticated subject may resolve one."""
        if not self.subject.authenticated:
            return None
        stmt = select(Unit).where(Unit.id == unit_id)
        return (await self._db.execute(stmt)).scalar_one_or_none()

    async def acting(self) -> tuple[frozenset[int], int | None]:
        """Units where someone may act on an alert, and the duty unit (``authz.acting``): who is
        on duty is not personal data, and this reads no more than unit ids and roles."""
        if not self.subject.authenticated:
            return frozenset(), None
        s = Staff
        stmt = select(s.unit_id, StaffRole.role).join(StaffRole, StaffRole.staff_id == s.id)
        found = await self._db.execute(self._plans.scope(stmt.where(s.active)))
        rows = cast(list[tuple[int, str]], found.all())  # two columns; Db.execute is untyped
        pairs = [(unit_id, Role(role)) for unit_id, role in rows]
        return acting_units(self.decisions.policy, pairs), duty_unit(pairs)

    async def units(self) -> list[Unit]:
        if not self.subject.authenticated:
            return []
        return list((await self._db.execute(select(Unit).order_by(Unit.id))).scalars().all())

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


def _id(row: Any) -> int:
    record_id: int = row.id
    return record_id
