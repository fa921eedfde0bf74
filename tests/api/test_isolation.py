"""Tests cannot disturb each other (tests/conftest.py): whatever one test writes, through any
path of the service, is gone before the next test starts; a test on a private copy commits there
and nowhere else.

The two instances of ``test_each_test_starts_from_the_district_as_built`` look for each other's
writes: whichever runs second (in any order, on either backend) proves the first one's were
rolled back. The ``api`` fixture also compares the district's row counts with the baseline after
every test, so a write that escaped a test's transaction fails that test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from api.app import create_app
from api.jobs import escalate_overdue
from domain import models as m
from domain.session import create_engine, system_session
from tests.builders import insert_person, make_alert, make_person, pass_deadline
from tests.conftest import Api, Districts, count_rows, row_counts

# Phones no demo person has: one per test instance and path.
PHONES = {
    ("first", "api"): "13700009101",
    ("first", "second app"): "13700009102",
    ("first", "system session"): "13700009103",
    ("second", "api"): "13700009201",
    ("second", "second app"): "13700009202",
    ("second", "system session"): "13700009203",
}
LOOKUP = "query($p: String) { lookupPersons(phone: $p) { inScope } }"


async def _found(api: Api, phone: str) -> int:
    """How many persons have this phone, by the blind index (a lookup finds persons outside
    the looker's jurisdiction too, with basic fields only)."""
    return len((await api.data("grid.donghu", LOOKUP, {"p": phone}))["lookupPersons"])


async def _counts(api: Api) -> dict[str, int]:
    """Row counts as the test itself sees them (inside its transaction)."""
    async with system_session(api.engine, reason="test assertion: row counts") as s:
        return dict((await s.execute(count_rows())).one()._mapping)


@pytest.mark.parametrize("mine, theirs", [("first", "second"), ("second", "first")])
async def test_each_test_starts_from_the_district_as_built(
    api: Api, districts: Districts, mine: str, theirs: str
) -> None:
    baseline = districts.made[api.backend].counts
    assert await _counts(api) == baseline, "a test starts from the district as it was built"
    for path in ("api", "second app", "system session"):
        assert await _found(api, PHONES[theirs, path]) == 0, f"the other test's {path} write"

    # Writes through every path a test exercises: a request, a second app on the same
    # database, a system session, the scheduler's escalation (and every request's access log).
    await make_person(api, "grid.donghu", community=0, phone=PHONES[mine, "api"])
    settings = api.app.state.settings
    second = create_app(replace(settings, scheduler_seconds=0))
    other = Api(api.backend, second, second.state.engine, api.district, api.url)
    await make_person(other, "grid.donghu", community=0, phone=PHONES[mine, "second app"])
    await second.state.engine.dispose()
    async with system_session(api.engine, reason="test: an import") as s:
        await insert_person(
            s,
            api.app.state.keys,
            residence=api.district.communities[0]["grid"],
            sealed={"name": "隔离测试", "phone": PHONES[mine, "system session"]},
        )
        await s.commit()
    alert = await make_alert(api, community=0)
    await pass_deadline(api, alert)
    assert await escalate_overdue(api.engine) >= 1

    for path in ("api", "second app", "system session"):
        assert await _found(api, PHONES[mine, path]) == 1, f"this test sees its own {path} write"
    grown = await _counts(api)
    assert grown["persons"] == baseline["persons"] + 3
    assert grown["alerts"] == baseline["alerts"] + 1
    assert grown["access_events"] > baseline["access_events"]
    # Nothing of it is committed: another connection sees the district as built.
    assert await row_counts(api.engine) == baseline


@pytest.mark.own_database
async def test_a_private_copy_commits_there_and_nowhere_else(
    api: Api, districts: Districts
) -> None:
    shared = districts.made[api.backend]
    assert api.url != shared.api.url
    assert await row_counts(api.engine) == shared.counts, "a copy of the district as built"
    await make_person(api, "grid.donghu", community=0, phone="13700009301")
    # Committed: a connection of another engine sees it.
    engine = create_engine(api.url)
    try:
        async with system_session(engine, reason="test assertion") as s:
            persons = (await s.execute(select(m.Person.id))).scalars().all()
    finally:
        await engine.dispose()
    assert len(persons) == shared.counts["persons"] + 1
    assert await row_counts(shared.api.engine) == shared.counts
    assert await _found(api, "13700009301") == 1
