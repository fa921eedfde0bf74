"""The policy: a Casbin model and a human-readable policy file, asked through a memo.

Casbin decides; it never sees a row. Questions are of the form (role, entity, action, relation,
condition), there are few distinct ones, and the policy does not change while the process runs, so
every answer is memoised for the life of the process: a request pays for Casbin at most once per
question (~50 µs each with ``FastEnforcer``), and the cost of authorization never grows with
rows × fields.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import casbin

from authz.conditions import ANY
from authz.entities import Entity
from authz.relations import Relation
from domain.classification import FieldClass
from domain.staff import Role

HERE = Path(__file__).parent
MODEL_PATH = HERE / "model.conf"
POLICY_PATH = HERE / "policy.csv"

Grant = tuple[Relation, str]
"""(relation, condition): rows a role may see something of. Condition ``*`` means any row."""


class Policy:
    unrestricted = False
    """True only for the allow-all baseline: no row predicates, every class readable."""

    def __init__(self, model_path: Path = MODEL_PATH, policy_path: Path = POLICY_PATH) -> None:
        # Index policy lines by (role, entity): both are exact values in every line.
        self._enforcer = casbin.FastEnforcer(
            str(model_path), str(policy_path), cache_key_order=[0, 1]
        )
        self._memo: dict[tuple[str, str, str, str, str], bool] = {}
        self._grants: dict[tuple[Role, Entity], frozenset[Grant]] = {}
        # Casbin logs every request at INFO/WARNING; decisions are audited by the gate instead.
        logging.getLogger("casbin").setLevel(logging.ERROR)

    def allows(
        self,
        role: Role,
        entity: Entity,
        action: str,
        relation: Relation | str,
        condition: str = ANY,
    ) -> bool:
        key = (role.value, entity.value, action, str(relation), condition)
        answer = self._memo.get(key)
        if answer is None:
            answer = bool(self._enforcer.enforce(*key))
            self._memo[key] = answer
        return answer

    def readable(
        self,
        roles: Iterable[Role],
        entity: Entity,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> frozenset[FieldClass]:
        """Classes of ``entity`` readable under any of ``relations`` by any of ``roles`` for a
        record with ``conditions``."""
        roles, relations = tuple(roles), tuple(relations)
        conds = (ANY, *conditions)
        return frozenset(
            fc
            for fc in FieldClass
            if any(
                self.allows(role, entity, f"read:{fc.value}", relation, cond)
                for role in roles
                for relation in relations
                for cond in conds
            )
        )

    def grants(self, roles: Iterable[Role], entity: Entity) -> frozenset[Grant]:
        """(relation, condition) pairs under which ``roles`` may read anything of ``entity``."""
        out: set[Grant] = set()
        for role in roles:
            key = (role, entity)
            if key not in self._grants:
                self._grants[key] = self._role_grants(role, entity)
            out |= self._grants[key]
        return frozenset(out)

    def _role_grants(self, role: Role, entity: Entity) -> frozenset[Grant]:
        candidates: set[Grant] = set()
        for line in self.lines:
            p_role, p_entity, action, relation, condition, effect = line
            if (p_role, p_entity, effect) != (role.value, entity.value, "allow"):
                continue
            if not action.startswith("read:"):
                continue
            relations = list(Relation) if relation == ANY else [Relation(relation)]
            candidates |= {(r, condition) for r in relations}
        return frozenset(
            (r, c)
            for r, c in candidates
            if self.readable((role,), entity, (r,), () if c == ANY else (c,))
        )

    def permitting_relation(
        self,
        roles: Iterable[Role],
        entity: Entity,
        action: str,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> Relation | None:
        """The first relation under which some role may perform ``action``, or None (denied)."""
        roles = tuple(roles)
        conds = (ANY, *conditions)
        for relation in sorted(relations):
            if any(
                self.allows(role, entity, action, relation, cond)
                for role in roles
                for cond in conds
            ):
                return relation
        return None

    @cached_property
    def lines(self) -> list[list[str]]:
        """The policy as data, for the generated privacy matrix and for review."""
        return [list(p) for p in self._enforcer.get_policy()]


class AllowAllPolicy(Policy):
    """Every decision is "allow": no row predicates, every class readable, the rest of the gate
    (loading, revealing, the access log) unchanged.

    The baseline for measuring what the privacy layer costs (benchmarks) and for testing data
    loading independently of the policy. ``api.protection.Protection.check`` refuses it in
    production mode.
    """

    unrestricted = True

    def allows(
        self,
        role: Role,
        entity: Entity,
        action: str,
        relation: Relation | str,
        condition: str = ANY,
    ) -> bool:
        return True

    def readable(
        self,
        roles: Iterable[Role],
        entity: Entity,
        relations: Iterable[Relation],
        conditions: Iterable[str] = (),
    ) -> frozenset[FieldClass]:
        return frozenset(FieldClass)

    def _role_grants(self, role: Role, entity: Entity) -> frozenset[Grant]:
        return frozenset((r, ANY) for r in Relation)
