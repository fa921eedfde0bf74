"""The actions a subject may be permitted to perform, by the names the policy file uses.

Reads are decided per field class (``read:<class>``, see ``authz.gate.decisions``); every other
action is one of these. ``tests/unit/test_actions.py`` checks that this set and the actions in
``authz/policy.csv`` are the same, so a typo in either is a failing test, not a silent deny.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    ASSIGN = "assign"
    SEARCH = "search"
    ERASE = "erase"
    BREAK_GLASS = "break_glass"


QUALIFIED = frozenset({Action.CREATE})
"""Actions the policy may narrow by a qualifier (``create:<intervention kind>``)."""


def policy_action(action: Action, qualifier: str | None = None) -> str:
    """The action string the policy file uses: ``create`` or ``create:home_visit``."""
    if qualifier is None:
        return action.value
    if action not in QUALIFIED:
        raise ValueError(f"{action} takes no qualifier")
    return f"{action.value}:{qualifier}"
