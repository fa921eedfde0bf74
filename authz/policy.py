"""The policy: a Casbin model and a human-readable policy file, asked through a memo.

Casbin decides; it never sees a row. Questions are of the form (role, entity, action, relation),
there are few distinct ones, and the policy does not change while the process runs, so every answer
is memoised for the life of the process: a request pays for Casbin at most once per question
(~50 µs each with ``FastEnforcer``), and the cost of authorization never grows with rows × fields.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import casbin

from authz.entities import Entity
from authz.relations import Relation
from domain.classification import FieldClass
from domain.staff import Role

HERE = Path(__file__).parent
MODEL_PATH = HERE / "model.conf"
POLICY_PATH = HERE / "policy.csv"


class Policy:
    def __init__(self, model_path: Path = MODEL_PATH, policy_path: Path = POLICY_PATH) -> None:
        # Index policy lines by (role, entity): both are exact values in every line.
        self._enforcer = casbin.FastEnforcer(
            str(model_path), str(policy_path), cache_key_order=[0, 1]
        )
        self._memo: dict[tuple[str, str, str, str], bool] = {}
        # Casbin logs every request at INFO/WARNING; decisions are audited by the gate instead.
        logging.getLogger("casbin").setLevel(logging.ERROR)

    def allows(self, role: Role, entity: Entity, action: str, relation: Relation | str) -> bool:
        key = (role.value, entity.value, action, str(relation))
        answer = self._memo.get(key)
        if answer is None:
            answer = bool(self._enforcer.enforce(*key))
            self._memo[key] = answer
        return answer

    def readable(
        self, roles: Iterable[Role], entity: Entity, relations: Iterable[Relation]
    ) -> frozenset[FieldClass]:
        """Field classes of ``entity`` readable under any of ``relations`` by any of ``roles``."""
        relations = tuple(relations)
        return frozenset(
            field_class
            for field_class in FieldClass
            if any(
                self.allows(role, entity, f"read:{field_class.value}", relation)
                for role in roles
                for relation in relations
            )
        )

    def row_relations(self, roles: Iterable[Role], entity: Entity) -> frozenset[Relation]:
        """Relations under which ``roles`` may read anything of ``entity``: the rows to fetch."""
        roles = tuple(roles)
        return frozenset(r for r in Relation if self.readable(roles, entity, (r,)))

    def permitting_relation(
        self, roles: Iterable[Role], entity: Entity, action: str, relations: Iterable[Relation]
    ) -> Relation | None:
        """The first relation under which some role may perform ``action``, or None (denied)."""
        roles = tuple(roles)
        for relation in sorted(relations):
            if any(self.allows(role, entity, action, relation) for role in roles):
                return relation
        return None

    @cached_property
    def lines(self) -> list[list[str]]:
        """The policy as data, for the generated privacy matrix and for review."""
        return [list(p) for p in self._enforcer.get_policy()]


class AllowAllPolicy(Policy):
    """Every decision is "allow", with all the gate's machinery still running.

    The baseline for measuring what the privacy layer costs (benchmarks) and for testing data
    loading independently of the policy. ``api.app.create_app`` refuses it in production mode.
    """

    def allows(self, role: Role, entity: Entity, action: str, relation: Relation | str) -> bool:
        return True
