"""No encrypted column's value is in the database in the clear (persons' names, ID numbers,
phones, addresses and birth dates; case text, intervention notes, alert summaries, assessment
answers, family circumstances...: every table with sealed columns, found from the model), and a
ciphertext moved to another row fails loudly through the API instead of showing someone else's
data."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select, update

from domain import models as m
from domain.session import system_session
from tests.builders import gid, make_person, number_of
from tests.conftest import Api
from tests.observability import open_sealed


async def _all_plain(api: Api) -> dict[str, list[str]]:
    """The plain values of every encrypted column (a few hundred rows of each sealed table),
    opened through their keys, by table."""
    values: dict[str, list[str]] = defaultdict(list)
    for row, _, _, text in await open_sealed(api.engine, api.app.state.keys, limit=400):
        # Persons' short fields all count; free text only when long enough to be its own
        # (tests also write stock words like 演示 into clear columns).
        if text and len(text) >= (2 if isinstance(row, m.Person) else 8):
            values[row.__tablename__].append(text)
    return values


def _database_bytes(api: Api, tmp_path: Path) -> bytes:
    if api.backend == "sqlite":
        path = Path(api.url.removeprefix("sqlite+aiosqlite:///"))
        data = path.read_bytes()
        wal = path.with_name(path.name + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    url = api.url.replace("postgresql+asyncpg://", "postgresql://")
    dump = subprocess.run(
        ["pg_dump", "--data-only", url], capture_output=True, check=True, timeout=120
    )
    return dump.stdout


async def test_no_sealed_field_is_stored_in_the_clear(api: Api, tmp_path: Path) -> None:
    by_table = await _all_plain(api)
    # The demo's names, numbers, birth dates, case text, notes, summaries, circumstances and
    # answers were all read back through their keys: the search below looks for real values.
    assert len(by_table["persons"]) > 1000
    for table in ("cases", "interventions", "families", "alerts"):
        assert by_table[table], f"no sealed {table} text was read back"
    raw = _database_bytes(api, tmp_path)
    assert "东湖第2社区".encode() in raw, "control: the search does find text stored in the clear"
    leaked = sorted({(t, len(v)) for t, vs in by_table.items() for v in vs if v.encode() in raw})
    assert leaked == [], f"values found in the clear (table, length): {leaked[:10]}"


async def test_a_ciphertext_moved_to_another_row_fails_loudly(api: Api) -> None:
    created = [
        number_of(await make_person(api, name=name, birthDate="1960-06-06"))
        for name in ("甲某某", "乙某某")
    ]
    async with system_session(api.engine, reason="test: an attacker swaps two ciphertexts") as s:
        rows = await s.execute(select(m.Person.id, m.Person.name).where(m.Person.id.in_(created)))
        names = {person_id: name for person_id, name in rows.all()}
        first, second = created
        await s.execute(update(m.Person).where(m.Person.id == first).values(name=names[second]))
        await s.commit()
    try:
        body = await api.gql(
            "social.donghu",
            "query($id: ID!) { node(id: $id) { ... on Person { name } } }",
            {"id": gid("Person", first)},
        )
    finally:  # put back before the assertions below read the person again
        async with system_session(api.engine, reason="test: undo the swap") as s:
            await s.execute(update(m.Person).where(m.Person.id == first).values(name=names[first]))
            await s.commit()
    assert body.get("data") in (None, {"node": None})
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_ERROR"
    assert "乙某某" not in str(body)
    restored = await api.data(
        "social.donghu",
        "query($id: ID!) { node(id: $id) { ... on Person { name } } }",
        {"id": gid("Person", first)},
    )
    assert restored["node"] == {"name": "甲某某"}
