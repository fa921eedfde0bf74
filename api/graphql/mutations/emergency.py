"""Break glass (紧急访问) and its review by auditors."""

from __future__ import annotations

from datetime import timedelta

import strawberry
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.mutations.shell import mutate, reload, run
from api.graphql.types.cases import CaseType
from api.graphql.types.emergency import EmergencyAccessType
from api.graphql.validators import collect
from api.services import emergency
from authz.gate import Gate


@strawberry.type
class EmergencyAccessPayload:
    access: EmergencyAccessType | None
    case: CaseType | None = strawberry.field(description="The case as you may now see it.")
    errors: list[UserError]


@strawberry.type
class EmergencyMutations:
    @strawberry.mutation(
        description=(
            "Break glass: time-boxed access to one case in your jurisdiction, for the roles "
            "allowed to (police, psychiatrist). The reason is mandatory; the grant is flagged "
            "for auditor review."
        )
    )
    async def break_glass(
        self, info: strawberry.Info, case: relay.GlobalID, reason: str, minutes: int = 240
    ) -> EmergencyAccessPayload:
        async def action(gate: Gate) -> int:
            case_id, text = collect(
                lambda: ids.decode(case, "Case", "case")[1],
                lambda: v.text(reason, 2000, "reason", required=True),
            )
            return await emergency.break_glass(
                gate, case_id=case_id, reason=text or "", duration=timedelta(minutes=minutes)
            )

        grant_id, errors = await run(info, action)
        case_id = None if grant_id is None else ids.decode(case, "Case", "case")[1]
        return EmergencyAccessPayload(
            access=await reload(info, EmergencyAccessType, grant_id, "access"),
            case=await reload(info, CaseType, case_id, "case"),
            errors=errors,
        )

    @strawberry.mutation(
        description="Mark a break-glass grant reviewed, with a comment (auditors)."
    )
    async def review_emergency_access(
        self, info: strawberry.Info, id: relay.GlobalID, comment: str
    ) -> EmergencyAccessPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "EmergencyAccess")[1]
            return await emergency.review(gate, grant_id=number, comment=comment)

        return await mutate(
            info, action, EmergencyAccessPayload, EmergencyAccessType, "access", case=None
        )
