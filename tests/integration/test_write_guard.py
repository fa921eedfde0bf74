"""Writes safe by construction (issue 13): a protected row written without a permit is refused
at flush, and one written under a permit but never logged is refused at commit. Nothing here
commits: every case ends in the refusal or a rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from audit.log import RequestAccessLog
from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate, UnloggedWrite
from authz.policy import Policy
from authz.relations import Relation
from authz.subject import Subject
from domain import models as m
from domain.persons import Gender
from domain.session import session_factory, system_session
from domain.staff import Role
from tests.conftest import Api


@asynccontextmanager
async def grid_gate(api: Api) -> AsyncIterator[tuple[Gate, RequestAccessLog]]:
    unit = api.district.communities[0]["grid"]
    async with system_session(api.engine, reason="test: the grid's unit path") as s:
        path = (await s.execute(select(m.Unit.path).where(m.Unit.id == unit))).scalar_one()
    async with session_factory(api.engine)() as session:
        subject = Subject(
            staff_id=api.district.staff["grid.donghu"],
            username="grid.donghu",
            unit_id=unit,
            unit_path=path,
            jurisdiction_path=path,
            roles=frozenset({Role.GRID_WORKER}),
        )
        log = RequestAccessLog(request_id="write-guard", actor=subject.actor)
        gate = Gate(
            session=session, subject=subject, policy=Policy(), sink=log, keys=api.app.state.keys
        )
        try:
            yield gate, log
        finally:
            await session.rollback()


def _person(api: Api) -> m.Person:
    person = m.Person(
        gender=Gender.UNKNOWN,
        residence_unit_id=api.district.communities[0]["grid"],
        created_at=datetime.now(UTC),
    )
    person.set_categories(set())
    return person


async def test_a_protected_row_added_without_a_permit_is_refused_at_flush(api: Api) -> None:
    async with grid_gate(api) as (gate, _):
        session = gate._db.session  # what a careless resolver would reach for
        session.add(_person(api))
        with pytest.raises(UnloggedWrite, match="without a permit"):
            await session.flush()


async def test_a_permitted_row_never_logged_is_refused_at_commit(api: Api) -> None:
    async with grid_gate(api) as (gate, log):
        permit = gate.authorize(Entity.PERSON, Action.CREATE, {Relation.JURISDICTION})
        gate.add(permit, _person(api))
        await gate.flush()  # a permit is enough to flush (a new row needs its id to be sealed)
        with pytest.raises(UnloggedWrite, match="without a write event"):
            await gate._db.session.commit()
        assert [d.kind.value for d in log.pending] == []


async def test_a_visible_row_changed_outside_for_write_is_refused(api: Api) -> None:
    person_id = api.district.records[0]["low_income"]
    async with grid_gate(api) as (gate, _):
        visible = (await gate.by_ids(m.Person, [person_id]))[person_id]
        visible.row.gender = Gender.FEMALE  # read access is not write access
        with pytest.raises(UnloggedWrite, match="Person written without a permit"):
            await gate.flush()


async def test_an_insert_is_permitted_and_logged_in_one_step(api: Api) -> None:
    async with grid_gate(api) as (gate, log):
        permit = gate.authorize(Entity.PERSON, Action.CREATE, {Relation.JURISDICTION})
        person_id = await gate.insert(permit, _person(api), sealed={"name": "测试人员"})
        writes = [d for d in log.pending if d.kind.value == "write"]
        assert [(w.entity, w.entity_id, w.person_id) for w in writes] == [
            ("person", person_id, person_id)
        ]
        assert "name" in writes[0].fields
        gate._db.session.sync_session.info["xinqiao_write_ledger"].check_commit(
            gate._db.session.sync_session
        )
