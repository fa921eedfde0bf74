"""The KEK schedule that bounds how long an erased person's data key survives in backups.

A version is due for rotation when it is older than ``XINQIAO_KEK_ROTATION_DAYS``; once a
completed rotation has emptied it, it is due for retirement after ``XINQIAO_BACKUP_RETENTION_DAYS``
(no kept backup can need it any more). ``keys status`` exits 3 when something is due;
``keys retire --due`` retires exactly those versions (and with ``--destroy-files`` deletes their
files). Time is moved by back-dating the recorded timestamps, or by passing ``now``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from api import keyring
from api.settings import Settings
from domain.base import utcnow
from domain.keys import KeyVersion
from domain.session import create_engine, system_session
from migrations import runner
from tests.cli.test_cli import cli


async def _back_date(url: str, version: int, **days_ago: int) -> None:
    """Move a version's ``created_at`` / ``emptied_at`` into the past."""
    engine = create_engine(url)
    async with system_session(engine, reason="test: back-date a key version") as s:
        values = {f"{name}_at": utcnow() - timedelta(days=d) for name, d in days_ago.items()}
        await s.execute(update(KeyVersion).where(KeyVersion.version == version).values(values))
        await s.commit()
    await engine.dispose()


async def _data_keys(url: str, key_dir: Path, owners: list[str]) -> None:
    engine = create_engine(url)
    ring = keyring.load(key_dir)
    await keyring.verify(engine, ring)
    async with system_session(engine, reason="test setup") as s:
        for owner in owners:
            await keyring.create_data_key(s, ring, owner)
        await s.commit()
    await engine.dispose()


async def test_status_and_retire_due_follow_the_schedule(
    empty_database: str, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(key_dir)}
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["keys", "init"], env).returncode == 0
    await _data_keys(empty_database, key_dir, ["person:1", "person:2", "family:1"])

    fresh = cli(["keys", "status"], env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines()[0].split() == [
        "version",
        "created",
        "emptied",
        "retired",
        "data",
        "keys",
    ]
    assert fresh.stdout.splitlines()[1].split()[0] == "1"
    assert fresh.stdout.splitlines()[1].split()[-1] == "3" and "due" not in fresh.stdout

    await _back_date(empty_database, 1, created=91)
    old = cli(["keys", "status"], env)
    assert old.returncode == 3, "something is due: cron and monitoring see exit code 3"
    assert "rotation due: version 1 is older than 90 days" in old.stdout
    assert "xinqiao keys add-version" in old.stdout

    assert cli(["keys", "add-version"], env).returncode == 0
    rotated = cli(["keys", "rotate"], env)
    assert rotated.returncode == 0, rotated.stderr
    after = cli(["keys", "status"], env)
    assert after.returncode == 0, after.stdout  # emptied today: backups may still need it
    today = utcnow().strftime("%Y-%m-%d")
    assert after.stdout.splitlines()[1].split()[:4] == ["1", _day_ago(91), today, "-"]
    nothing = cli(["keys", "retire", "--due", "--destroy-files"], env)
    assert nothing.returncode == 0 and "no version is due" in nothing.stdout
    assert (key_dir / "kek-v1.key").exists()

    await _back_date(empty_database, 1, emptied=31)
    due = cli(["keys", "status"], env)
    assert due.returncode == 3
    assert "retire due: version 1 has wrapped nothing for more than 30 days" in due.stdout
    retired = cli(["keys", "retire", "--due", "--destroy-files"], env)
    assert retired.returncode == 0, retired.stderr
    assert "version 1 retired; deleted" in retired.stdout
    assert not (key_dir / "kek-v1.key").exists() and (key_dir / "kek-v2.key").exists()
    done = cli(["keys", "status"], env)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[1].split()[3] == today  # retired
    # The server starts without version 1's file, and every data key still unwraps.
    engine = create_engine(empty_database)
    ring = keyring.load(key_dir)
    await keyring.verify(engine, ring)
    async with system_session(engine, reason="test") as s:
        found = await keyring.load_data_keys(s, ring, ["person:1", "person:2", "family:1"])
    assert len(found) == 3
    await engine.dispose()


def _day_ago(days: int) -> str:
    return (utcnow() - timedelta(days=days)).strftime("%Y-%m-%d")


async def test_a_version_that_wraps_again_is_not_retired_and_its_wait_restarts(
    empty_database: str, tmp_path: Path
) -> None:
    """A server still on the old key set (no rolling restart yet) wrapped a new data key under
    version 1 after the rotation: version 1 is needed again, so it is not due (``retire``
    refuses it anyway); the next rotation empties it again, and the retention wait restarts."""
    engine = create_engine(empty_database)
    await runner.upgrade(engine)
    key_dir = tmp_path / "keys"
    keyring.init_keys(key_dir)
    old_dir = tmp_path / "old"
    old_dir.mkdir(mode=0o700)
    for name in ("kek-v1.key", "blind-index.key"):
        (old_dir / name).write_bytes((key_dir / name).read_bytes())
        (old_dir / name).chmod(0o600)
    ring1 = keyring.load(old_dir)
    await keyring.verify(engine, ring1)
    async with system_session(engine, reason="test setup") as s:
        await keyring.create_data_key(s, ring1, "person:1")
        await s.commit()
    keyring.add_version(key_dir)
    ring2 = keyring.load(key_dir)
    await keyring.verify(engine, ring2)
    assert await keyring.rotate(engine, ring2) == 1
    later = utcnow() + timedelta(days=40)
    state = await keyring.status(engine, rotation_days=90, retention_days=30, now=later)
    assert [(v.version, v.retire_due, v.rotation_due) for v in state.versions] == [
        (1, True, False),
        (2, False, False),
    ]
    async with system_session(engine, reason="test: a straggler server") as s:
        await keyring.create_data_key(s, ring1, "person:2")
        await s.commit()
    state = await keyring.status(engine, rotation_days=90, retention_days=30, now=later)
    assert [(v.version, v.data_keys, v.retire_due, v.rotation_due) for v in state.versions] == [
        (1, 1, False, True),
        (2, 1, False, False),
    ]
    assert state.due
    assert await keyring.retire_due(engine, retention_days=30, now=later) == []
    with pytest.raises(SystemExit, match="rotate first"):
        await keyring.retire(engine, 1)
    assert await keyring.rotate(engine, ring2) == 1
    soon = utcnow() + timedelta(days=29)
    state = await keyring.status(engine, rotation_days=90, retention_days=30, now=soon)
    assert not state.due, "emptied again just now: its backup-retention wait starts over"
    much_later = utcnow() + timedelta(days=31)
    assert await keyring.retire_due(engine, retention_days=30, now=much_later) == [1]
    # The newest version is never due, however old and however empty.
    state = await keyring.status(
        engine, rotation_days=90, retention_days=30, now=utcnow() + timedelta(days=400)
    )
    assert [(v.version, v.retire_due, v.rotation_due) for v in state.versions] == [
        (1, False, False),
        (2, False, True),
    ]
    await engine.dispose()


def test_schedule_settings() -> None:
    d = Settings.from_env({})
    assert (d.kek_rotation_days, d.backup_retention_days) == (90, 30)
    s = Settings.from_env(
        {"XINQIAO_KEK_ROTATION_DAYS": "30", "XINQIAO_BACKUP_RETENTION_DAYS": "14"}
    )
    assert (s.kek_rotation_days, s.backup_retention_days) == (30, 14)
    with pytest.raises(SystemExit, match="KEK_ROTATION_DAYS"):
        Settings.from_env({"XINQIAO_KEK_ROTATION_DAYS": "0"})


def test_retire_takes_a_version_or_due(tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": "sqlite+aiosqlite:///" + str(tmp_path / "x.db")}
    both = cli(["keys", "retire", "1", "--due"], env)
    assert both.returncode == 2 and "not both" in both.stderr
    loose = cli(["keys", "retire", "1", "--destroy-files"], env)
    assert loose.returncode == 2 and "--destroy-files goes with --due" in loose.stderr
