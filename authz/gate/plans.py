"""Plans: the subject's relations and conditions compiled into SQL.

Pure: builds statements, runs none. A plan is the row filter for one model (any grant: relation
AND condition) plus flag columns telling, per row, which relations and conditions hold, so the
rows come back already labelled and ``Decisions`` can decide fields without another query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true

from authz.conditions import ANY, Condition, ConditionCompiler
from authz.entities import entity_of
from authz.gate.decisions import Decisions
from authz.gate.types import Filter
from authz.links import PERSON_LINKS
from authz.overlays import OVERLAY_CONDITIONS, minor_overlay_sql
from authz.relations import Relation, RelationCompiler
from domain.base import Base
from domain.classification import FieldClass
from domain.session import ROW_SCOPE

Plan = tuple[ColumnElement[bool], list[Any]]


class Plans:
    def __init__(self, decisions: Decisions, now: datetime) -> None:
        self._decisions = decisions
        self._scope = {ROW_SCOPE: decisions.subject.username}
        self.relations = RelationCompiler(decisions.subject, now)
        self.conditions = ConditionCompiler(now.date(), self.relations)
        self._plans: dict[type[Base], Plan | None] = {}

    def scope(self, stmt: Any) -> Any:
        """Mark a statement as built by the gate for this subject (``domain.session`` refuses
        protected statements without the mark)."""
        return stmt.execution_options(**self._scope)

    def plan(self, model: type[Base]) -> Plan | None:
        """The row filter and flag columns, or None when nothing may be seen. Built once per
        model per request (a page loads the same model at several nesting levels)."""
        if model not in self._plans:
            self._plans[model] = self._build(model)
        return self._plans[model]

    def _build(self, model: type[Base]) -> Plan | None:
        entity = entity_of(model)
        link = PERSON_LINKS.get(entity)
        links = [] if link is None else [link.label("link_person")]
        if self._decisions.unrestricted:
            return true(), links
        relations = self.relations.predicates(entity)
        conditions = self.conditions.conditions(entity)
        usable = [
            (r, c)
            for r, c in self._decisions.usable_grants(entity)
            if r in relations and (c == ANY or c in conditions)
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

    def scoped(self, model: type[Base], *where: ColumnElement[bool]) -> Select[Any] | None:
        """``SELECT model, <flags> WHERE <any grant> AND where``, or None (deny)."""
        plan = self.plan(model)
        if plan is None:
            return None
        visible, flags = plan
        stmt: Select[Any] = self.scope(select(model, *flags).where(visible, *where))
        return stmt

    def visible_predicate(self, model: type[Base]) -> ColumnElement[bool]:
        plan = self.plan(model)
        return false() if plan is None else plan[0]

    def relation_predicate(self, model: type[Base], relation: Relation) -> ColumnElement[bool]:
        """Rows the subject holds ``relation`` to, whatever its read grants say (a permit under
        that relation, such as break glass in one's jurisdiction, locates its record by it)."""
        predicates = self.relations.predicates(entity_of(model))
        if relation in predicates:
            return predicates[relation]
        if relation is Relation.DIRECTORY:
            return true() if self._decisions.subject.authenticated else false()
        return false()

    def readable_rows(
        self, model: type[Base], field_class: FieldClass | None
    ) -> ColumnElement[bool] | None:
        """SQL for "this row's ``field_class`` is readable to the subject", or None if it is
        readable on no row. Compiled from the same grants and overlay as ``Decisions``."""
        if field_class is None:
            return None
        entity = entity_of(model)
        decisions = self._decisions
        if not decisions.class_possible(entity, field_class):
            return None
        if decisions.unrestricted:
            return true()
        relations = self.relations.predicates(entity)
        conditions = self.conditions.conditions(entity)
        parts: list[ColumnElement[bool]] = []
        referral_parts: list[ColumnElement[bool]] = []
        for r, c in decisions.usable_grants(entity):
            if r not in relations or (c != ANY and c not in conditions):
                continue
            if not decisions.class_readable_under(entity, field_class, r, c):
                continue
            part = relations[r] if c == ANY else and_(relations[r], conditions[Condition(c)])
            (referral_parts if r is Relation.REFERRAL else parts).append(part)
        if not parts and not referral_parts:
            return None
        roles = decisions.subject.roles
        overlay = minor_overlay_sql(roles, entity, field_class, relations, conditions)
        others = or_(*parts) if overlay is None else and_(or_(*parts), overlay)
        # What a consented referral shares is readable whatever the overlay says (ADR 0005).
        return or_(others, *referral_parts) if parts else or_(*referral_parts)

    def holding(self, model: type[Base], record_id: int) -> tuple[Select[Any], list[str]] | None:
        """A statement for every row condition that holds for one record, whoever is asking
        (``Visible`` carries only the conditions the subject's own grants mention)."""
        conditions = self.conditions.conditions(entity_of(model))
        if not conditions:
            return None
        names = sorted(conditions)
        stmt = select(*(conditions[c].label(f"cond_{c.value}") for c in names))
        stmt = stmt.select_from(model).where(model.id == record_id)  # type: ignore[attr-defined]  # every gated model has an integer ``id``
        return self.scope(stmt), [c.value for c in names]


def filter_clause(f: Filter) -> ColumnElement[bool]:
    col = f.column
    if f.op == "eq":
        return col == f.value
    if f.op == "in":
        return col.in_(list(f.value))
    if f.op == "gte":
        return col >= f.value
    if f.op == "lt":
        return col < f.value
    if f.op == "is_null":
        return col.is_(None)
    if f.op == "is_not_null":
        return col.is_not(None)
    raise ValueError(f"unknown filter op {f.op}")  # a programming error
