"""Routing by risk tier (seed 001, item 2): which units handle a case.

High → the police station, the health centre and the community of the person's residence,
jointly (the police station leads); medium → the comprehensive-governance centre; low → the
community grid. One rule, used by the case services and by the demo generator alike.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from domain.cases import RiskLevel
from domain.units import UnitKind


@dataclass(frozen=True, slots=True)
class UnitNode:
    """What routing needs of a unit: where it sits, and which area an agency serves."""

    id: int
    kind: UnitKind
    path: str
    area_unit_id: int | None = None

    @property
    def ancestors(self) -> list[int]:
        """Unit ids from the root down to this unit itself."""
        return [int(x) for x in self.path.strip("/").split("/") if x]


@dataclass(frozen=True, slots=True)
class Team:
    lead: int
    co_units: tuple[int, ...] = ()


def route(area: UnitNode, units: Sequence[UnitNode], risk: RiskLevel) -> Team:
    """The team for a case anchored at ``area`` (the person's residence unit)."""
    if risk is RiskLevel.LOW:
        return Team(area.id)
    ancestors = area.ancestors

    def serving(kind: UnitKind) -> int | None:
        # the unit of that kind serving the nearest ancestor of the area, else any of that kind
        for ancestor in reversed(ancestors):
            for unit in units:
                if unit.kind == kind and unit.area_unit_id == ancestor:
                    return unit.id
        return next((u.id for u in units if u.kind == kind), None)

    if risk is RiskLevel.MEDIUM:
        return Team(serving(UnitKind.GOVERNANCE_CENTRE) or area.id)
    kinds = {u.id: u.kind for u in units}
    community = next(
        (a for a in reversed(ancestors) if kinds.get(a) == UnitKind.COMMUNITY), area.id
    )
    police = serving(UnitKind.POLICE_STATION) or area.id
    health = serving(UnitKind.HEALTH_CENTRE)
    return Team(police, tuple(u for u in (health, community) if u is not None and u != police))


def serving(area: UnitNode, units: Sequence[UnitNode], kind: UnitKind) -> int | None:
    """The unit of ``kind`` serving the nearest ancestor of ``area`` (itself included), or
    None when no unit of that kind serves any of them."""
    for ancestor in reversed(area.ancestors):
        for unit in units:
            if unit.kind == kind and unit.area_unit_id == ancestor:
                return unit.id
    return None


def alert_team(team: Team, units: Sequence[UnitNode]) -> tuple[int, ...]:
    """The units an alert for ``team`` goes to at once: the team, and for its community leg
    the community's grid teams too (ADR 0009: the grid workers are the community on a joint
    team; a community unit itself rarely has an account)."""
    members = [team.lead, *team.co_units]
    kinds = {u.id: u.kind for u in units}
    for unit_id in list(members):
        if kinds.get(unit_id) == UnitKind.COMMUNITY:
            members += [u.id for u in units if u.kind == UnitKind.GRID and _parent(u) == unit_id]
    return tuple(dict.fromkeys(members))


def _parent(unit: UnitNode) -> int | None:
    ancestors = unit.ancestors
    return ancestors[-2] if len(ancestors) > 1 else None


def next_owner(
    current: int,
    parents: Mapping[int, int | None],
    acting: Collection[int],
    duty: int | None,
) -> int:
    """Where an unacknowledged alert escalates: the nearest ancestor of ``current`` with someone
    able to act on it, skipping units nobody can act for; past the top, the district duty unit
    (``duty``), which always can. Without a duty unit, the parent (or ``current`` at the top)."""
    unit = parents.get(current)
    while unit is not None:
        if unit in acting:
            return unit
        unit = parents.get(unit)
    if duty is not None:
        return duty
    return parents.get(current) or current


def first_acting(
    targets: Sequence[int],
    parents: Mapping[int, int | None],
    acting: Collection[int],
    duty: int | None,
) -> int:
    """The owner of a new alert: its first target someone can act for, or where the first
    target would escalate to (so no alert is ever owned by a unit nobody staffs)."""
    for unit in targets:
        if unit in acting:
            return unit
    return next_owner(targets[0], parents, acting, duty)
