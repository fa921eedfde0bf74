"""The actions in code and in the policy file are the same set: a typo in either would be a
silent deny (or a line nobody can use), so it is a failing test instead."""

from __future__ import annotations

import pytest

from authz.actions import QUALIFIED, Action, policy_action
from authz.gate.types import Permit
from authz.policy import POLICY_PATH
from domain.interventions import InterventionKind


def _policy_actions() -> set[str]:
    actions = set()
    for line in POLICY_PATH.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts[0] == "p":
            actions.add(parts[3])
    return actions


def test_every_non_read_action_in_the_policy_is_an_action_in_code() -> None:
    in_policy = {a for a in _policy_actions() if not a.startswith("read:")}
    base = {a.split(":", 1)[0] for a in in_policy}
    assert base == {a.value for a in Action}
    qualified = {a for a in in_policy if ":" in a}
    kinds = {k.value for k in InterventionKind} | {"*"}
    assert {a.split(":", 1)[1] for a in qualified} <= kinds
    assert {Action(a.split(":", 1)[0]) for a in qualified} <= QUALIFIED


def test_policy_action_names() -> None:
    assert policy_action(Action.CREATE) == "create"
    assert policy_action(Action.CREATE, "home_visit") == "create:home_visit"
    with pytest.raises(ValueError, match="no qualifier"):
        policy_action(Action.ERASE, "x")


def test_a_permit_cannot_be_made_outside_the_gate() -> None:
    from authz.entities import Entity
    from authz.relations import Relation

    with pytest.raises(TypeError, match="issued by the gate"):
        Permit(Entity.PERSON, Action.CREATE, Relation.JURISDICTION)
