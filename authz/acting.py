"""Who can act on an alert: the units with at least one active account whose roles may take it
on (``update`` under ``assigned``), and the district duty unit where escalation ends.

Routing and escalation must never hand a crisis to a unit nobody staffs, or whose staff may not
acknowledge it: both ask here, from the same policy that decides the acknowledgement itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from authz.entities import Entity
from authz.policy import Policy
from authz.relations import Relation
from domain.staff import Role


def acting_units(policy: Policy, staff: Iterable[tuple[int, Role]]) -> frozenset[int]:
    """Units (from active staff's (unit, role) pairs) someone in which may act on an alert."""
    acting: set[int] = set()
    for unit_id, role in staff:
        if unit_id in acting:
            continue
        if policy.permitting_relation((role,), Entity.ALERT, "update", {Relation.ASSIGNED}):
            acting.add(unit_id)
    return frozenset(acting)


def duty_unit(staff: Iterable[tuple[int, Role]]) -> int | None:
    """The unit of the district's emergency duty officers, if there is one (the lowest id)."""
    units = [unit_id for unit_id, role in staff if role == Role.DUTY_OFFICER]
    return min(units) if units else None
