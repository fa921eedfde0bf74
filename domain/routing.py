"""Routing by risk tier (seed 001, item 2): which units handle a case.

High → the police station, the health centre and the community of the person's residence,
jointly (the police station leads); medium → the comprehensive-governance centre; low → the
community grid. One rule, used by the case services and by the demo generator alike.
"""

from __future__ import annotations

from collections.abc import Sequence
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
