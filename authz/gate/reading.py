"""Reading rows: pages, counts, lookups by id and child loads, all from the compiled plan.

A record outside the subject's relations is indistinguishable from a missing one: both are
absent, and a lookup by id logs the miss the same way for either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, Select, func, inspect, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from authz.entities import Entity, entity_of
from authz.gate.cursors import decode_cursor, encode_cursor
from authz.gate.db import Db
from authz.gate.decisions import Decisions
from authz.gate.plans import Plans, filter_clause
from authz.gate.sealer import Sealer
from authz.gate.types import Filter, Forbidden, GateStats, M, Order, Page, Visible
from authz.probe import Probe
from authz.relations import Relation
from domain.base import Base
from domain.disclosure import AccessKind, Disclosure, DisclosureSink
from domain.sealing import encrypted_columns


class Reader:
    def __init__(
        self,
        db: Db,
        decisions: Decisions,
        plans: Plans,
        sealer: Sealer,
        sink: DisclosureSink,
        stats: GateStats,
        probe: Probe,
    ) -> None:
        self._db = db
        self._decisions = decisions
        self._plans = plans
        self._sealer = sealer
        self._sink = sink
        self._stats = stats
        self._probe = probe

    async def rows(self, model: type[M], stmt: Select[Any]) -> list[Visible[M]]:
        """Run a planned statement; each row comes back labelled with what makes it visible."""
        entity = entity_of(model)
        names = [
            c for c in stmt.selected_columns.keys() if c.startswith(("rel_", "cond_", "link_"))
        ]
        with self._probe.span("authz.rows", {"authz.entity": entity.value}) as span:
            result = await self._db.execute(stmt)
            out: list[Visible[M]] = []
            for row in result.all():
                values: dict[str, Any] = dict(zip(names, row[1:], strict=True))
                rels = frozenset(
                    Relation(n[4:]) for n, v in values.items() if v and n[:4] == "rel_"
                )
                conds = frozenset(n[5:] for n, v in values.items() if v and n[:5] == "cond_")
                person = values.get("link_person")
                out.append(Visible(row[0], rels, entity, conds, person))
            span["authz.rows_visible"] = len(out)
            self._stats.rows += len(out)
            if encrypted_columns(model):
                await self._sealer.load_keys([v.row for v in out])
        return out

    def filters(self, model: type[Base], filters: Sequence[Filter]) -> list[ColumnElement[bool]]:
        """Filters match only rows where the filtered class is readable: a filter on a class you
        may read on some rows narrows to those rows; on none, it is refused. Otherwise the
        filter would be an inference channel (HAPI FHIR #6065)."""
        clauses: list[ColumnElement[bool]] = []
        for f in filters:
            field_class = f.column.property.columns[0].info.get("field_class")
            readable_rows = self._plans.readable_rows(model, field_class)
            if readable_rows is None:
                if not self._decisions.grants(entity_of(model)):
                    continue  # nothing is visible at all: the page is empty anyway
                self._refuse(model, f.column, "筛选", f.field)
            clauses += [readable_rows, filter_clause(f)]
        return clauses

    def checked_order(self, model: type[Base], order: Order) -> Order:
        """The order a page will use: an explicit order on a class not readable under every
        grant is refused (it would rank rows by what the subject cannot see); the default one
        falls back to the record key."""
        if self._decisions.usable(model, order.column):
            return order
        if order.default:
            pk: InstrumentedAttribute[Any] = inspect(model).primary_key[0]  # type: ignore[assignment]  # a mapped column
            return Order(pk, order.descending)
        self._refuse(model, order.column, "排序", "orderBy")

    def _refuse(
        self, model: type[Base], column: InstrumentedAttribute[Any], verb: str, field: str | None
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
        conditions = self.filters(model, filters)
        pk = inspect(model).primary_key[0]
        order = self.checked_order(model, order)
        if after is not None:
            value, last_id = decode_cursor(after, order)
            if order.descending:
                conditions.append(
                    or_(order.column < value, (order.column == value) & (pk < last_id))
                )
            else:
                conditions.append(
                    or_(order.column > value, (order.column == value) & (pk > last_id))
                )
        stmt = self._plans.scoped(model, *conditions)
        if stmt is None:
            return Page([], False, after is not None)
        direction = _direction(order)
        stmt = stmt.order_by(direction(order.column), direction(pk)).limit(first + 1)
        items = await self.rows(model, stmt)
        has_next = len(items) > first
        items = items[:first]
        cursors = [
            encode_cursor(order, getattr(v.row, order.column.key), getattr(v.row, pk.name))
            for v in items
        ]
        return Page(items, has_next, after is not None, cursors, order.column.key)

    async def count(self, model: type[Base], *, filters: Sequence[Filter] = ()) -> int:
        """Visible rows only: a total never reveals hidden records."""
        conditions = self.filters(model, filters)
        if self._plans.plan(model) is None:
            return 0
        stmt = select(func.count()).select_from(model)
        stmt = stmt.where(self._plans.visible_predicate(model), *conditions)
        return int((await self._db.execute(self._plans.scope(stmt))).scalar_one())

    async def by_ids(
        self, model: type[M], ids: Sequence[int], *, log_misses: bool = True
    ) -> dict[int, Visible[M]]:
        """Visible rows among ``ids``. Misses are logged the same whether missing or hidden."""
        pk = inspect(model).primary_key[0]
        wanted = set(ids)
        stmt = self._plans.scoped(model, pk.in_(wanted))
        found = {} if stmt is None else {_id(v.row): v for v in await self.rows(model, stmt)}
        self._stats.rows_withheld += len(wanted) - len(found)
        entity = entity_of(model)
        for missing in sorted(wanted - found.keys()) if log_misses else ():
            self.log_miss(entity, missing)
        return found

    def log_miss(self, entity: Entity, record_id: int, reason: str = "not_found") -> None:
        self._sink.record(
            Disclosure(
                AccessKind.DENIED,
                entity.value,
                record_id,
                reason=reason,
                person_id=record_id if entity is Entity.PERSON else None,
            )
        )

    async def children(
        self,
        model: type[M],
        parent_key: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
        parent_ids: Sequence[int],
        *,
        order: Order,
        limit: int,
    ) -> dict[int, list[Visible[M]]]:
        """Up to ``limit`` visible children per parent, in one statement for all parents."""
        grouped: dict[int, list[Visible[M]]] = defaultdict(list)
        plan = self._plans.plan(model)
        if plan is None or not parent_ids:
            return grouped
        visible_rows, flags = plan
        pk = inspect(model).primary_key[0]
        direction = _direction(order)
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
        )
        for visible in await self.rows(model, self._plans.scope(stmt)):
            grouped[getattr(visible.row, parent_key.key)].append(visible)
        return grouped


def _direction(order: Order) -> Callable[[Any], Any]:
    return (lambda c: c.desc()) if order.descending else (lambda c: c.asc())


def _id(row: Any) -> int:
    record_id: int = row.id
    return record_id
