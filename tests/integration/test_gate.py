"""The privacy gate's safety net and scope rules, below the API.

Sessions come from ``domain.session.session_factory`` looked up when called, so that they join
the test's transaction like the service's own (tests/conftest.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from audit.log import RequestAccessLog
from authz.gate import Gate, Order
from authz.policy import Policy
from authz.subject import Subject
from domain import models as m
from domain import session as db
from domain.session import UnscopedQuery, system_session
from domain.staff import Role
from tests.conftest import Api


async def test_protected_tables_refuse_unscoped_queries(api: Api) -> None:
    async with db.session_factory(api.engine)() as session:
        for model in (m.Person, m.Case, m.Intervention, m.Family, m.Staff, m.Consent):
            with pytest.raises(UnscopedQuery):
                await session.execute(select(model).limit(1))
        with pytest.raises(UnscopedQuery):
            await session.get(m.Person, 1)
        # Units are not personal data.
        assert (await session.execute(select(m.Unit).limit(1))).scalar_one()


async def test_system_sessions_need_a_reason(api: Api) -> None:
    with pytest.raises(ValueError):
        async with system_session(api.engine, reason=""):
            pass  # pragma: no cover


@pytest.mark.parametrize("path", [None, ""])
async def test_an_empty_jurisdiction_means_nothing_not_everything(
    api: Api, path: str | None
) -> None:
    """The row-security trap of ENGINEERING-NOTES §7: an empty scope must never match all."""
    subject = Subject(
        staff_id=api.district.staff["grid.donghu"],
        username="grid.donghu",
        unit_id=None,
        unit_path=None,
        jurisdiction_path=path,
        roles=frozenset({Role.GRID_WORKER}),
    )
    async with db.session_factory(api.engine)() as session:
        log = RequestAccessLog(request_id="t", actor=subject.actor)
        gate = Gate(
            session=session, subject=subject, policy=Policy(), sink=log, keys=api.app.state.keys
        )
        page = await gate.page(m.Person, order=Order(m.Person.created_at), first=10)
        assert page.items == []
        assert await gate.count(m.Person) == 0


async def test_children_are_limited_per_parent(api: Api) -> None:
    subject = Subject(
        staff_id=api.district.staff["admin"],
        username="admin",
        unit_id=None,
        unit_path="/",
        jurisdiction_path="/",
        roles=frozenset({Role.ADMIN}),
    )
    from authz.policy import AllowAllPolicy

    async with db.session_factory(api.engine)() as session:
        gate = Gate(
            session=session,
            subject=subject,
            policy=AllowAllPolicy(),
            sink=RequestAccessLog(request_id="t", actor=subject.actor),
            keys=api.app.state.keys,
        )
        cases = (await gate.page(m.Case, order=Order(m.Case.opened_at), first=50)).items
        grouped = await gate.children(
            m.Intervention,
            m.Intervention.case_id,
            [c.row.id for c in cases],
            order=Order(m.Intervention.performed_at, descending=True),
            limit=1,
        )
        assert grouped and all(len(v) == 1 for v in grouped.values())
        async with system_session(api.engine, reason="test assertion") as s:
            many = (await s.execute(select(m.Intervention.case_id))).scalars().all()
        assert any(many.count(k) > 1 for k in grouped), "some case has several interventions"
