"""Key-encryption keys from the operator's side: ``xinqiao keys`` and the start-up checks.

The server refuses to start without a key or with the wrong one, and says why; rotation
re-wraps every data key, survives being stopped half-way, and leaves every key usable; a
retired version's file can go; an erased owner's data key is gone."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from api import keyring
from api.app import create_app
from api.settings import Settings
from domain.base import Base
from domain.keys import DataKeyRecord, KeyRing
from domain.sealing import encrypted_columns, index_columns, sealed_models, unseal
from domain.session import create_engine, system_session
from domain.units import UnitKind
from migrations import runner
from tests.builders import (
    id_number,
    insert_case,
    insert_family,
    insert_intervention,
    insert_person,
    insert_unit,
)
from tests.cli.test_cli import cli


def test_init_creates_private_keys_once(tmp_path: Path) -> None:
    env = {"XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    first = cli(["keys", "init"], env)
    assert first.returncode == 0 and "kek-v1.key" in first.stdout
    for name in ("kek-v1.key", "blind-index.key"):
        path = tmp_path / "keys" / name
        assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == 32
    again = cli(["keys", "init"], env)
    assert again.returncode == 0 and "already" in again.stdout


def test_no_key_no_server(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no key-encryption key"):
        create_app(Settings(database_url="sqlite+aiosqlite://", key_dir=tmp_path / "none"))
    keyring.init_keys(tmp_path / "loose")
    os.chmod(tmp_path / "loose" / "kek-v1.key", 0o644)
    with pytest.raises(SystemExit, match="readable by others"):
        create_app(Settings(database_url="sqlite+aiosqlite://", key_dir=tmp_path / "loose"))


async def test_the_wrong_key_is_refused_at_start_up(empty_database: str, tmp_path: Path) -> None:
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    await engine.dispose()
    keyring.init_keys(tmp_path / "keys")
    settings = Settings(database_url=empty_database, key_dir=tmp_path / "keys", scheduler_seconds=0)
    with TestClient(create_app(settings)) as client:  # first start registers the key
        assert client.get("/healthz").status_code == 200
    (tmp_path / "keys" / "kek-v1.key").unlink()
    keyring.init_keys(tmp_path / "keys")  # a different key under the same version
    with (
        pytest.raises(RuntimeError, match="check value mismatch"),
        TestClient(create_app(settings)),
    ):
        pass


async def test_rotation_survives_a_stop_and_erasure_destroys_the_key(
    empty_database: str, tmp_path: Path
) -> None:
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    key_dir = tmp_path / "keys"
    keyring.init_keys(key_dir)
    ring = keyring.load(key_dir)
    await keyring.verify(engine, ring)
    keys = {}
    async with system_session(engine, reason="test setup") as s:
        for n in range(23):
            keys[f"person:{n}"] = await keyring.create_data_key(s, ring, f"person:{n}")
        await s.commit()

    keyring.add_version(key_dir)
    ring2 = keyring.load(key_dir)
    await keyring.verify(engine, ring2)
    # Stopped after two batches of five (as a kill would), then resumed to the end.
    assert await keyring.rotate(engine, ring2, batch=5, max_batches=2) == 10
    async with system_session(engine, reason="test") as s:
        mixed = await keyring.load_data_keys(s, ring2, list(keys))
    assert mixed == keys, "half-rotated: every key still unwraps, under either version"
    seen: list[tuple[int, int]] = []
    assert (
        await keyring.rotate(engine, ring2, batch=5, progress=lambda d, t: seen.append((d, t)))
        == 13
    )
    assert seen[-1] == (13, 13)
    async with system_session(engine, reason="test") as s:
        versions = set((await s.execute(select(DataKeyRecord.kek_version))).scalars())
        assert versions == {2}
        assert await keyring.load_data_keys(s, ring2, list(keys)) == keys
    # Version 1 is no longer needed: retire it and its file can be destroyed.
    await keyring.retire(engine, 1)
    (key_dir / "kek-v1.key").unlink()
    ring3 = keyring.load(key_dir)
    await keyring.verify(engine, ring3)
    async with system_session(engine, reason="test: erase person 3") as s:
        assert await keyring.destroy_data_key(s, "person:3")
        await s.commit()
    async with system_session(engine, reason="test") as s:
        left = await keyring.load_data_keys(s, ring3, list(keys))
    assert "person:3" not in left and len(left) == 22
    await engine.dispose()


async def test_the_cli_rotates(empty_database: str, tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["keys", "init"], env).returncode == 0
    engine = create_engine(empty_database)
    ring = keyring.load(tmp_path / "keys")
    await keyring.verify(engine, ring)
    async with system_session(engine, reason="test setup") as s:
        await keyring.create_data_key(s, ring, "family:1")
        await s.commit()
    await engine.dispose()
    assert cli(["keys", "add-version"], env).returncode == 0
    rotated = cli(["keys", "rotate", "--batch", "1"], env)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 data keys now wrapped under version 2" in rotated.stdout
    assert "re-wrapped 1/1" in rotated.stderr
    refused = cli(["keys", "retire", "2"], env)
    assert refused.returncode != 0 and "rotate first" in refused.stderr


async def test_a_demo_loaded_with_one_key_refuses_a_server_with_another(
    empty_database: str, tmp_path: Path
) -> None:
    """The data keys record their version's check value as they are created, so the first
    server start cannot adopt a different key (review finding)."""
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "a")}
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["keys", "init"], env).returncode == 0
    assert cli(["demo", "--persons", "5"], env).returncode == 0
    keyring.init_keys(tmp_path / "b")  # other keys, same version numbers
    settings = Settings(database_url=empty_database, key_dir=tmp_path / "b", scheduler_seconds=0)
    with pytest.raises(RuntimeError, match="not the one"), TestClient(create_app(settings)):
        pass


async def test_a_different_index_key_or_suite_is_refused(
    empty_database: str, tmp_path: Path
) -> None:
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    keyring.init_keys(tmp_path / "keys")
    await keyring.verify(engine, keyring.load(tmp_path / "keys"))
    index = tmp_path / "keys" / "blind-index.key"
    original = index.read_bytes()
    index.unlink()
    keyring.init_keys(tmp_path / "keys")  # a new index key: every lookup would silently miss
    with pytest.raises(SystemExit, match="blind index key"):
        await keyring.verify(engine, keyring.load(tmp_path / "keys"))
    index.unlink()
    index.write_bytes(original)
    index.chmod(0o600)
    with pytest.raises(SystemExit, match="cipher suite"):
        await keyring.verify(engine, keyring.load(tmp_path / "keys", suite="sm4gcm"))
    await engine.dispose()


async def test_retiring_refuses_the_newest_and_unknown_versions(
    empty_database: str, tmp_path: Path
) -> None:
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    keyring.init_keys(tmp_path / "keys")
    await keyring.verify(engine, keyring.load(tmp_path / "keys"))
    with pytest.raises(SystemExit, match="newest"):
        await keyring.retire(engine, 1)
    with pytest.raises(SystemExit, match="no key version 7"):
        await keyring.retire(engine, 7)
    await engine.dispose()


async def _sealed_values(engine: AsyncEngine, ring: KeyRing) -> dict[tuple[str, int, str], Any]:
    """Every non-empty sealed value: (table, row, column) → (ciphertext, plaintext, index)."""
    out: dict[tuple[str, int, str], Any] = {}
    async with system_session(engine, reason="test: read every sealed value") as s:
        for model in sealed_models(Base):
            rows = list((await s.execute(select(model))).scalars())
            keys = await keyring.load_data_keys(s, ring, sorted({r.key_owner for r in rows}))
            indexes = index_columns(model)
            for row in rows:
                for attr in encrypted_columns(model):
                    if getattr(row, attr) is not None:
                        index = getattr(row, indexes[attr]) if attr in indexes else None
                        out[(model.__tablename__, row.id, attr)] = (
                            getattr(row, attr),
                            unseal(row, attr, keys[row.key_owner]),
                            index,
                        )
    return out


async def _a_few_records(engine: AsyncEngine, ring: KeyRing) -> None:
    """Twelve residents with names, ID numbers, phones and addresses, two families and four
    cases with an intervention each: fourteen data keys (two half-passes of four and a rest),
    sealed text in every kind of table, and blind indexes."""
    async with system_session(engine, reason="test setup") as s:
        street = await insert_unit(s, name="测试街道", kind=UnitKind.STREET)
        grid = await insert_unit(s, name="测试网格", kind=UnitKind.GRID, parent=street)
        residents = []
        for i in range(12):
            born = date(1960 + i, 3, 1)
            sealed = {
                "name": f"测试居民{i}",
                "id_number": id_number("990104", born, i),
                "phone": f"1390000{i:04d}",
                "address": f"测试路{i}号",
                "birth_date": born,
            }
            residents.append(
                await insert_person(s, ring, residence=grid.id, birth_year=born.year, sealed=sealed)
            )
        for head, spouse in (residents[0:2], residents[2:4]):
            await insert_family(
                s,
                ring,
                residence=grid.id,
                members=[(head, "head"), (spouse, "spouse")],
                circumstances="低保家庭，需要定期走访",
            )
        for resident in residents[4:8]:
            case = await insert_case(
                s,
                ring,
                subject=resident.id,
                area=grid.id,
                lead=grid.id,
                presenting_problem="近来失眠，情绪低落",
            )
            await insert_intervention(s, ring, case=case, unit=grid.id, notes="入户走访，了解近况")
        await s.commit()


def _database_bytes(url: str) -> bytes:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite+aiosqlite:///"))
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    dump = subprocess.run(
        ["pg_dump", "--data-only", url.replace("postgresql+asyncpg://", "postgresql://")],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return dump.stdout


async def test_rekeying_stopped_half_way_and_resumed_reseals_everything(
    empty_database: str, tmp_path: Path
) -> None:
    """Every data key gets fresh material (same id), every sealed value a new ciphertext of the
    same plaintext; a stop half-way leaves every record readable; blind indexes stay; no
    plaintext is ever written."""
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    key_dir = tmp_path / "keys"
    keyring.init_keys(key_dir)
    ring = keyring.load(key_dir)
    await _a_few_records(engine, ring)
    await keyring.verify(engine, ring)
    before = await _sealed_values(engine, ring)
    assert {t for t, _, _ in before} >= {"persons", "cases", "interventions", "families"}
    async with system_session(engine, reason="test") as s:
        ids = dict((await s.execute(select(DataKeyRecord.owner, DataKeyRecord.id))).all())
    keyring.add_version(key_dir)
    ring2 = keyring.load(key_dir)
    await keyring.verify(engine, ring2)

    seen: list[tuple[int, int]] = []
    half = await keyring.rekey(
        engine, ring2, batch=4, max_batches=2, progress=lambda d, t: seen.append((d, t))
    )
    assert half == 8 and seen == [(4, len(ids)), (8, len(ids))]
    middle = await _sealed_values(engine, ring2)
    assert {k: v[1] for k, v in middle.items()} == {k: v[1] for k, v in before.items()}
    assert (await keyring.status(engine, rotation_days=90, retention_days=30)).rekey_pending == len(
        ids
    ) - 8

    rest = await keyring.rekey(engine, ring2, batch=4)  # resumes: only the keys left
    assert rest == len(ids) - 8
    after = await _sealed_values(engine, ring2)
    assert after.keys() == before.keys()
    for where, (ciphertext, plain, index) in before.items():
        assert after[where][0] != ciphertext, f"{where} was not re-sealed"
        assert after[where][0][:10] == ciphertext[:10], "same header: same data-key id"
        assert after[where][1:] == (plain, index), f"{where}: plaintext or index changed"
    async with system_session(engine, reason="test") as s:
        records = list((await s.execute(select(DataKeyRecord))).scalars())
    assert {r.owner: r.id for r in records} == ids, "same record ids"
    assert all(r.kek_version == 2 and r.rekeyed_at and not r.rekey_pending for r in records)
    raw = _database_bytes(empty_database)
    plains = {p for _, p, _ in before.values() if p and len(p) >= 4}
    assert plains and not [p for p in plains if p.encode() in raw], "plaintext in the database"
    # The old version was emptied by the pass (its data keys moved to version 2).
    state = await keyring.status(engine, rotation_days=90, retention_days=30)
    assert [(v.version, v.data_keys, v.emptied_at is not None) for v in state.versions] == [
        (1, 0, True),
        (2, len(ids), False),
    ]
    # A new run starts a new pass over every key.
    assert await keyring.rekey(engine, ring2, batch=100) == len(ids)
    await engine.dispose()


def test_a_key_in_the_environment_and_a_different_file_are_refused(tmp_path: Path) -> None:
    """Two sources for one key version (a secret store's variable and a leftover file) must
    agree: neither silently wins, since data wrapped under one would not open under the other."""
    import base64

    keyring.init_keys(tmp_path / "keys")
    same = base64.b64encode((tmp_path / "keys" / "kek-v1.key").read_bytes()).decode()
    other = base64.b64encode(bytes(32)).decode()
    assert keyring.load(tmp_path / "keys", env={"XINQIAO_KEK_V1": same}).current.version == 1
    with pytest.raises(keyring.KeyProblem, match="different keys for version 1"):
        keyring.load(tmp_path / "keys", env={"XINQIAO_KEK_V1": other})
    with pytest.raises(keyring.KeyProblem, match="different blind-index keys"):
        keyring.load(tmp_path / "keys", env={"XINQIAO_INDEX_KEY": other})
