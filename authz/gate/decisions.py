"""Decisions: what this subject may see and do, asked of the policy once per question.

Pure: no session, no SQL. A request asks the same questions many times (every row of a page, at
every nesting level); each distinct (entity, relations, conditions) is decided once and memoised
for the request, so authorization costs grow with distinct questions, never with rows × fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute

from authz.conditions import ANY
from authz.entities import Entity, entity_of
from authz.gate.types import GateStats, Visible
from authz.overlays import OVERLAY_CONDITIONS, class_allowed, tighten, visible_categories
from authz.policy import Grant, Policy
from authz.relations import Relation
from authz.subject import Subject
from domain.base import Base
from domain.classification import FieldClass
from domain.staff import Role


class Decisions:
    def __init__(self, subject: Subject, policy: Policy, stats: GateStats) -> None:
        self.subject = subject
        self.policy = policy
        self._stats = stats
        self._grants: dict[Entity, frozenset[Grant]] = {}
        self._readable: dict[
            tuple[Entity, frozenset[Relation], frozenset[str]], frozenset[FieldClass]
        ] = {}

    @property
    def unrestricted(self) -> bool:
        return self.policy.unrestricted

    def grants(self, entity: Entity) -> frozenset[Grant]:
        """(relation, condition) pairs under which this subject may see rows of ``entity``."""
        if entity not in self._grants:
            self._grants[entity] = self.policy.grants(self.subject.roles, entity)
        return self._grants[entity]

    def usable_grants(self, entity: Entity) -> list[Grant]:
        """The grants a row filter may use: a write-only client reads only through its
        ``read_relations``."""
        only = self.subject.read_relations
        return [(r, c) for r, c in sorted(self.grants(entity)) if only is None or r in only]

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
        decision = self._readable.get(key)
        if decision is None:
            decision = self._decide(entity, relations, conditions)
            self._readable[key] = decision
            self._stats.decisions += 1
        return decision

    def _decide(
        self, entity: Entity, relations: frozenset[Relation], conditions: frozenset[str]
    ) -> frozenset[FieldClass]:
        roles = self.subject.roles
        decision = self.policy.readable(roles, entity, relations, conditions)
        if not self.policy.unrestricted:
            decision = tighten(roles, entity, relations, conditions, decision)
            if Relation.REFERRAL in relations:
                # A consented referral shares exactly its classes, minor or not (ADR 0005).
                shared = self.policy.readable(roles, entity, {Relation.REFERRAL}, conditions)
                decision |= tighten(
                    roles, entity, frozenset({Relation.REFERRAL}), frozenset(), shared
                )
        if self.subject.class_cap is not None:
            decision &= self.subject.class_cap
        return decision

    def class_readable_under(
        self, entity: Entity, field_class: FieldClass, relation: Relation, condition: str
    ) -> bool:
        """Whether one grant alone lets ``field_class`` be read (before overlays)."""
        conditions = () if condition == ANY else (condition,)
        return field_class in self.policy.readable(
            self.subject.roles, entity, (relation,), conditions
        )

    def class_possible(self, entity: Entity, field_class: FieldClass) -> bool:
        """False when no row could ever show ``field_class`` to this subject (cap or overlay)."""
        cap = self.subject.class_cap
        if cap is not None and field_class not in cap:
            return False
        return self.policy.unrestricted or class_allowed(self.subject.roles, entity, field_class)

    def permitting(
        self,
        entity: Entity,
        action: str,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> Relation | None:
        """The relation under which this subject may perform ``action``, or None (denied)."""
        return self.policy.permitting_relation(
            self.subject.roles, entity, action, relations, conditions
        )

    def would_permit(
        self,
        roles: Iterable[Role],
        entity: Entity,
        action: str,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> bool:
        """Whether *someone else* with ``roles`` would be allowed ``action`` (an assignment is
        itself a grant: it may only go to someone the policy lets work the record)."""
        permitted = self.policy.permitting_relation(roles, entity, action, relations, conditions)
        return permitted is not None

    def usable(self, model: type[Base], column: InstrumentedAttribute[Any]) -> bool:
        """Ordering or filtering by a class is an inference channel unless that class is
        readable on every row the subject can see (every grant, overlays assumed)."""
        entity = entity_of(model)
        field_class = column.property.columns[0].info.get("field_class")
        grants = self.grants(entity)
        if not grants:
            return True  # nothing is visible, so there is nothing to infer: the page is empty
        cap = self.subject.class_cap
        if field_class is None or (cap is not None and field_class not in cap):
            return False
        if not class_allowed(self.subject.roles, entity, field_class):
            return False
        worst = frozenset(OVERLAY_CONDITIONS.get(entity, frozenset()))
        return all(
            field_class in self.readable(entity, frozenset({r}), worst | ({c} - {ANY}))
            for r, c in grants
        )

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
