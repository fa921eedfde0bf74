"""Every disclosure reaches the access log, and no data leaves when the log cannot be written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from audit.log import RequestAccessLog
from domain.access_log import AccessEvent
from domain.session import system_session
from tests.conftest import Api


async def events_for(api: Api, request_id: str) -> list[AccessEvent]:
    async with system_session(api.engine, reason="test assertion") as s:
        return list(
            (
                await s.execute(select(AccessEvent).where(AccessEvent.request_id == request_id))
            ).scalars()
        )


async def test_reads_are_logged_with_fields_and_redactions(api: Api) -> None:
    request_id = "test-read-0001"
    response = await api.post(
        {"query": "{ persons(first: 3) { edges { node { id name idNumber } } } }"},
        {"Authorization": f"Bearer {api.token('grid.donghu')}", "X-Request-ID": request_id},
    )
    assert response.status_code == 200 and not response.json().get("errors")
    events = [e for e in await events_for(api, request_id) if e.kind == "read"]
    assert len(events) == 3
    for e in events:
        assert e.actor_username == "grid.donghu" and e.entity == "person"
        # Names of adults without sensitive categories only; never ID numbers.
        assert set(e.fields) | set(e.redacted) == {"name", "id_number"}
        assert "id_number" in e.redacted and "id_number" not in e.fields
        assert e.field_classes == (["identity"] if e.fields else [])
        assert e.relations == ["jurisdiction"]
        assert e.purpose == "case_management"


async def test_misses_and_denials_are_logged(api: Api) -> None:
    import base64

    request_id = "test-miss-0001"
    hidden = base64.b64encode(b"Person:99999999").decode()
    await api.post(
        {"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {"id": hidden}},
        {"Authorization": f"Bearer {api.token('grid.donghu')}", "X-Request-ID": request_id},
    )
    events = await events_for(api, request_id)
    assert [(e.kind, e.entity, e.entity_id, e.reason) for e in events] == [
        ("denied", "person", 99999999, "not_found")
    ]


async def test_no_data_leaves_when_the_log_cannot_be_written(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: RequestAccessLog, session: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(RequestAccessLog, "flush", broken)
    body = await api.gql("grid.donghu", "{ persons(first: 5) { edges { node { name phone } } } }")
    assert body["data"] is None
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "AUDIT_UNAVAILABLE"
    assert extensions["requestId"] and len(extensions["traceId"]) == 32, "support can find it"
    assert "disk full" not in str(body)


async def test_failed_log_rolls_back_a_mutation(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.api.test_mutations import CREATE_PERSON, grid_unit, person_count

    before = await person_count(api)

    async def broken(self: RequestAccessLog, session: Any) -> int:
        raise RuntimeError("log store down")

    monkeypatch.setattr(RequestAccessLog, "flush", broken)
    body = await api.gql(
        "grid.donghu",
        CREATE_PERSON,
        {"input": {"name": "不应写入", "gender": "MALE", "residenceUnit": grid_unit(api)}},
    )
    assert body["data"] is None or body["data"]["createPerson"]["person"] is None
    monkeypatch.undo()
    assert await person_count(api) == before


async def test_auditors_read_the_log_and_that_reading_is_logged(api: Api) -> None:
    import base64

    person = api.district.records[0]["high_subject"]
    await api.data(
        "teacher.school2",
        "query($id: ID!) { node(id: $id) { ... on Person { name } } }",
        {"id": base64.b64encode(f"Person:{person}".encode()).decode()},
    )
    history = await api.data(
        "auditor",
        """query($p: ID!) {
        personAccessHistory(person: $p, first: 50) { totalCount edges { node {
          actorUsername purpose fields relations outcome hash prevHash } } } }""",
        {"p": base64.b64encode(f"Person:{person}".encode()).decode()},
    )
    nodes = [e["node"] for e in history["personAccessHistory"]["edges"]]
    assert any(n["actorUsername"] == "teacher.school2" and "name" in n["fields"] for n in nodes)
    assert all(len(n["hash"]) == 64 for n in nodes)
    filtered = await api.data(
        "auditor",
        """{ accessEvents(first: 5, filter: {actor: "teacher.school2",
        entity: "person"}) { edges { node { actorUsername entity } } } }""",
    )
    assert filtered["accessEvents"]["edges"]
    assert {e["node"]["actorUsername"] for e in filtered["accessEvents"]["edges"]} == {
        "teacher.school2"
    }
    reads_of_the_log = await events_for_actor(api, "auditor", "access_event")
    assert reads_of_the_log, "reading the access log is itself logged"
    for user in ("grid.donghu", "admin", "police.donghu"):
        body = await api.data(user, "{ accessEvents { totalCount } }")
        assert body["accessEvents"]["totalCount"] == 0, user


async def events_for_actor(api: Api, actor: str, entity: str) -> list[AccessEvent]:
    async with system_session(api.engine, reason="test assertion") as s:
        return list(
            (
                await s.execute(
                    select(AccessEvent).where(
                        AccessEvent.actor_username == actor, AccessEvent.entity == entity
                    )
                )
            ).scalars()
        )


async def test_writes_record_field_names_and_keyed_hashes_not_values(api: Api) -> None:
    from tests.api.test_mutations import CREATE_PERSON, UPDATE_PERSON, grid_unit

    created = await api.data(
        "grid.donghu",
        CREATE_PERSON,
        {
            "input": {
                "name": "写入测试",
                "gender": "MALE",
                "residenceUnit": grid_unit(api),
                "phone": "13912345678",
            }
        },
    )
    person_id = created["createPerson"]["person"]["id"]
    response = await api.post(
        {"query": UPDATE_PERSON, "variables": {"id": person_id, "input": {"phone": "13987654321"}}},
        {"Authorization": f"Bearer {api.token('grid.donghu')}", "X-Request-ID": "write-hash-1"},
    )
    assert not response.json().get("errors")
    writes = [e for e in await events_for(api, "write-hash-1") if e.kind == "write"]
    assert len(writes) == 1 and writes[0].fields == ["phone"]
    # A sealed field is logged by name only: a keyed hash of the old number in this append-only
    # log would outlive the person's erasure (unsealed fields keep before/after hashes).
    assert not (writes[0].changes or {}).get("phone")
    assert "13912345678" not in str(writes[0]) and "13987654321" not in str(writes[0])
    assert writes[0].person_id is not None


async def test_a_mutations_write_events_name_the_operation(api: Api) -> None:
    """A mutation writes its events while it runs: they carry the operation's name too (set
    once the document is parsed, before execution), not only the reads after it."""
    from tests.api.test_mutations import UPDATE_PERSON, grid_unit

    created = await api.data(
        "grid.donghu",
        """mutation Register($input: CreatePersonInput!) {
          createPerson(input: $input) { person { id } errors { code } } }""",
        {"input": {"name": "命名测试", "gender": "FEMALE", "residenceUnit": grid_unit(api)}},
    )
    person_id = created["createPerson"]["person"]["id"]
    named = UPDATE_PERSON.replace("mutation(", "mutation Correct(", 1)
    response = await api.post(
        {"query": named, "variables": {"id": person_id, "input": {"address": "东湖路1号"}}},
        {"Authorization": f"Bearer {api.token('grid.donghu')}", "X-Request-ID": "named-write-1"},
    )
    assert not response.json().get("errors")
    events = await events_for(api, "named-write-1")
    assert any(e.kind == "write" for e in events)
    assert {e.operation for e in events} == {"Correct"}
