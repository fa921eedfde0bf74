"""Break glass (紧急访问): time-boxed access to one case, for the roles allowed to, and its
review by auditors."""

from __future__ import annotations

from datetime import timedelta

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate
from authz.relations import Relation
from domain import models as m


async def break_glass(gate: Gate, *, case_id: int, reason: str, duration: timedelta) -> int:
    """Open an emergency grant on one case in the subject's jurisdiction. Authorization comes
    first, so a role that may not break glass learns nothing about whether the case exists; the
    reason is checked before the lookup too (no oracle). The grant and every disclosure under
    it are logged."""
    me = gate.staff()
    permit = gate.authorize(
        Entity.CASE, Action.BREAK_GLASS, {Relation.JURISDICTION}, record_id=case_id
    )
    m.EmergencyGrant.check(reason=reason, duration=duration)
    case: m.Case = await gate.locate(permit, m.Case, case_id, "case")
    grant = m.EmergencyGrant.open(
        case_id=case_id, staff_id=me.id, reason=reason, at=gate.now, duration=duration
    )
    gate.add(permit, grant)
    await gate.flush()
    gate.wrote(
        permit,
        grant,
        ("case_id", "expires_at", "reason"),
        "break_glass",
        person_id=case.subject_id,
        relations=(Relation.EMERGENCY.value,),
    )
    return grant.id


async def review(gate: Gate, *, grant_id: int, comment: str) -> int:
    """An auditor marks a grant reviewed, with a comment."""
    me = gate.staff()
    target = await gate.for_write(m.EmergencyGrant, grant_id)
    target.row.review(staff_id=me.id, comment=comment, at=gate.now)
    gate.wrote(target.permit, target.row, ["reviewed_at", "review_comment"], "review")
    return grant_id
