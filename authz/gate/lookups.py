"""Reads under a permit rather than a read grant: what a write or a search must see of rows the
subject may not browse. Each is narrow and logged: ``locate`` finds the one record a permit names
(under the permit's own relation), ``search`` confirms exact matches and logs each as a search,
``aggregate`` counts for a parent whose statistics the subject may read, and ``conditions_of``
tells which row conditions hold for a record (an assignment is checked against them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Executable, inspect, select

from authz.actions import Action
from authz.entities import entity_of
from authz.gate.db import Db
from authz.gate.decisions import Decisions
from authz.gate.plans import Plans
from authz.gate.reading import Reader
from authz.gate.sealer import Sealer
from authz.gate.types import Forbidden, Found, Permit, Visible
from domain.base import Base
from domain.classification import FieldClass
from domain.disclosure import AccessKind, Disclosure, DisclosureSink
from domain.errors import NotFound

SEARCH_MAY_OPEN = frozenset({"name", "birth_date"})
"""What an exact search may open, and only to derive its basic card from (a masked name, an age
band): an ID number or a phone never leaves through a search."""


class Lookups:
    def __init__(
        self,
        db: Db,
        decisions: Decisions,
        plans: Plans,
        sealer: Sealer,
        reader: Reader,
        sink: DisclosureSink,
    ) -> None:
        self._db = db
        self._decisions = decisions
        self._plans = plans
        self._sealer = sealer
        self._reader = reader
        self._sink = sink

    async def locate(self, permit: Permit, model: type[Base], record_id: int, field: str) -> Any:
        """The record a permit names, found under the permit's own relation (break glass in
        one's jurisdiction; erasure from the directory) — not under a read grant. A miss is
        logged and raised as NotFound, the same for missing and out of reach."""
        pk = inspect(model).primary_key[0]
        where = self._plans.relation_predicate(model, permit.relation)
        found = (
            await self._db.execute(self._plans.scope(select(model).where(pk == record_id, where)))
        ).scalar_one_or_none()
        if found is None:
            self._reader.log_miss(entity_of(model), record_id, reason=permit.action.value)
            raise NotFound((field,))
        return found

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
        """Exact search, which is not browsing: it may confirm that a record exists outside the
        subject's relations. Needs a ``search`` permit; opens only ``opens`` (for the caller to
        derive the ``shown`` values from) and logs each hit as a search of ``shown``."""
        if permit.action is not Action.SEARCH:
            raise TypeError("search needs a search permit")
        if not set(opens) <= SEARCH_MAY_OPEN:
            raise TypeError(f"a search may open only {sorted(SEARCH_MAY_OPEN)}, to mask them")
        pk = inspect(model).primary_key[0]
        stmt = select(model).where(match).order_by(pk).limit(limit)
        rows = list((await self._db.execute(self._plans.scope(stmt))).scalars().all())
        if opens:
            await self._sealer.load_keys(rows)
        visible: dict[int, Visible[Any]] = {}
        if relations is None:  # which of the hits the subject may also browse
            visible = await self._reader.by_ids(model, [_id(r) for r in rows], log_misses=False)
        out = []
        for r in rows:
            record_id = _id(r)
            held = tuple(sorted(visible[record_id].relations)) if record_id in visible else ()
            self._sink.record(
                Disclosure(
                    AccessKind.SEARCH,
                    entity_of(model).value,
                    record_id,
                    fields=tuple(sorted(shown)),
                    field_classes=(FieldClass.BASIC.value,),
                    relations=held if relations is None else tuple(relations),
                    reason=reason,
                    person_id=record_id,
                )
            )
            opened = {a: self._sealer.open(r, a) for a in opens}
            out.append(Found(record_id, r, visible.get(record_id), opened))
        return out

    async def aggregate(
        self, parent: Visible[Any], field_class: FieldClass, stmt: Executable
    ) -> list[Any]:
        """Counts over rows the subject could never see, for a parent whose ``field_class``
        it may read (a campaign's statistics): logged as a read of the parent. The caller must
        suppress small cells before anything leaves (``domain.screening``)."""
        if not self._decisions.knows(parent, field_class):
            raise Forbidden()
        rows = list((await self._db.execute(self._plans.scope(stmt))).all())
        self._sink.record(
            Disclosure(
                AccessKind.READ,
                parent.entity.value,
                _id(parent.row),
                fields=("aggregates",),
                field_classes=(field_class.value,),
                relations=tuple(sorted(parent.relations)),
                reason="aggregate",
            )
        )
        return rows

    async def conditions_of(self, model: type[Base], record_id: int) -> frozenset[str]:
        """Every row condition that holds for one record, whoever is asking."""
        planned = self._plans.holding(model, record_id)
        if planned is None:
            return frozenset()
        stmt, names = planned
        row = (await self._db.execute(stmt)).first()
        if row is None:
            return frozenset()
        return frozenset(c for c, held in zip(names, row, strict=True) if held)


def _id(row: Any) -> int:
    record_id: int = row.id
    return record_id
