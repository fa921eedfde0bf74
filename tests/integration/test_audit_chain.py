"""The access log is a single verifiable chain; tampering is refused or detected.

Every test here has the district's access log to itself and edits it from connections and
processes of its own (a superuser's tampering, ``xinqiao audit verify``, concurrent requests): it
runs on a private copy of the demo district (``own_database``), which starts with an empty log.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from audit.keys import AUDIT_SIGNING_KEY, load_or_create_ed25519
from audit.log import append
from audit.retention import RetentionRefused, purge
from audit.verify import verify_log
from domain.access_log import AccessEvent
from domain.session import system_session
from tests.conftest import Api

XINQIAO = str(Path(sys.executable).with_name("xinqiao"))


pytestmark = pytest.mark.own_database


@pytest.fixture
async def fresh(api: Api) -> Api:
    """The service on a private copy of the demo district, its access log still empty."""
    async with system_session(api.engine, reason="test: the log starts empty") as s:
        assert (await s.execute(select(AccessEvent.seq))).first() is None
    return api


async def _some_reads(api: Api, n: int = 3) -> None:
    for user in ("grid.donghu", "social.donghu", "police.donghu")[:n]:
        await api.data(user, "{ persons(first: 5) { edges { node { name phone } } } }")


async def _verify(api: Api):  # type: ignore[no-untyped-def]
    key = load_or_create_ed25519(api.app.state.settings.key_dir / AUDIT_SIGNING_KEY)
    async with system_session(api.engine, reason="test verify") as s:
        return await verify_log(s, key.public_key())


async def _tamper(api: Api, *statements: str) -> None:
    """What a database superuser could do: switch the append-only triggers off and edit."""
    sqlite = api.url.startswith("sqlite")
    async with api.engine.begin() as conn:
        if sqlite:
            await conn.execute(text("DROP TRIGGER access_events_no_update"))
            await conn.execute(text("DROP TRIGGER access_events_no_delete"))
        else:
            await conn.execute(text("ALTER TABLE access_events DISABLE TRIGGER USER"))
        for statement in statements:
            await conn.execute(text(statement))


async def test_concurrent_requests_extend_one_chain(fresh: Api) -> None:
    users = ["grid.donghu", "social.donghu", "counselor", "zongzhi"] * 5
    await asyncio.gather(
        *(fresh.data(u, "{ persons(first: 3) { edges { node { maskedName } } } }") for u in users)
    )
    report = await _verify(fresh)
    assert report.ok, report.problem
    async with system_session(fresh.engine, reason="test") as s:
        seqs = (await s.execute(select(AccessEvent.seq).order_by(AccessEvent.seq))).scalars().all()
        requests = (await s.execute(select(AccessEvent.request_id).distinct())).scalars().all()
    assert seqs == list(range(1, len(seqs) + 1)), "no forks, no gaps"
    assert len(requests) == 20


async def test_the_application_cannot_edit_or_delete_events(fresh: Api) -> None:
    await _some_reads(fresh, 1)
    for statement in ("UPDATE access_events SET purpose = 'audit'", "DELETE FROM access_events"):
        with pytest.raises(DBAPIError):
            async with fresh.engine.begin() as conn:
                await conn.execute(text(statement))
    if not fresh.url.startswith("sqlite"):
        with pytest.raises(DBAPIError):
            async with fresh.engine.begin() as conn:
                await conn.execute(text("TRUNCATE access_events"))
    assert (await _verify(fresh)).ok


@pytest.mark.parametrize(
    "attack, at",
    [
        ("UPDATE access_events SET purpose = 'statistics' WHERE seq = 4", 4),
        ("DELETE FROM access_events WHERE seq = 3", 3),
        (
            "UPDATE access_events SET seq = -seq WHERE seq IN (5, 6);"
            "UPDATE access_events SET seq = 6 WHERE seq = -5;"
            "UPDATE access_events SET seq = 5 WHERE seq = -6",
            5,
        ),
        ("UPDATE access_events SET actor_username = 'someone' WHERE seq = 2", 2),
    ],
    ids=["edit", "delete", "reorder", "impersonate"],
)
async def test_tampering_is_detected_at_the_event(fresh: Api, attack: str, at: int) -> None:
    await _some_reads(fresh)
    assert (await _verify(fresh)).ok
    await _tamper(fresh, *attack.split(";"))
    report = await _verify(fresh)
    assert not report.ok and report.broken_seq == at, (report.broken_seq, report.problem)
    env = {
        **os.environ,
        "XINQIAO_DATABASE_URL": fresh.url,
        "XINQIAO_KEY_DIR": str(fresh.app.state.settings.key_dir),
    }
    cli = subprocess.run(
        [XINQIAO, "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert cli.returncode == 1 and f"BROKEN at sequence {at}" in cli.stderr


async def test_truncating_the_tail_is_detected(fresh: Api) -> None:
    await _some_reads(fresh)
    await _tamper(fresh, "DELETE FROM access_events WHERE seq > 2")
    report = await _verify(fresh)
    assert not report.ok and "head" in (report.problem or "")


async def test_purge_keeps_the_log_verifiable_and_respects_retention(fresh: Api) -> None:
    old = datetime.now(UTC) - timedelta(days=4 * 365)
    rows = [
        {
            "occurred_at": old + timedelta(minutes=i),
            "request_id": f"old-{i}",
            "trace_id": None,
            "operation": None,
            "operation_hash": None,
            "actor_staff_id": None,
            "actor_username": "grid.donghu",
            "actor_unit_id": None,
            "actor_roles": "grid_worker",
            "token_id": None,
            "purpose": "case_management",
            "kind": "read",
            "outcome": "permitted",
            "entity": "person",
            "entity_id": i,
            "person_id": i,
            "fields": ["name"],
            "redacted": [],
            "field_classes": ["identity"],
            "relations": ["jurisdiction"],
            "changes": None,
            "break_glass": False,
            "reason": None,
            "client_address": None,
            "user_agent": None,
        }
        for i in range(1, 6)
    ]
    async with system_session(fresh.engine, reason="test: old events") as s:
        await append(s, rows, algorithm="sha256")
        await s.commit()
    await _some_reads(fresh)
    key = load_or_create_ed25519(fresh.app.state.settings.key_dir / AUDIT_SIGNING_KEY)
    now = datetime.now(UTC)
    three_years = timedelta(days=3 * 365)
    async with system_session(fresh.engine, reason="test purge") as s:
        with pytest.raises(RetentionRefused):
            await purge(s, key, before=now - timedelta(days=30), now=now, retention=three_years)
        with pytest.raises(RetentionRefused):
            await purge(s, key, before=old, now=now, retention=timedelta(days=90))
        result = await purge(s, key, before=now - three_years, now=now, retention=three_years)
    assert result.deleted == 5 and result.cut_seq == 5
    report = await _verify(fresh)
    assert report.ok, report.problem
    assert report.first_seq == 6 and report.checkpoints == 1


async def test_every_personal_field_read_produces_an_event(fresh: Api) -> None:
    """Walk the schema: request every classified field of every gated type and find each one
    named in that request's access events."""
    import strawberry

    from api.graphql.queries import NODE_TYPES
    from authz.policy import AllowAllPolicy
    from domain.classification import field_classes

    app = create_app(fresh.app.state.settings, policy=AllowAllPolicy())
    everything = Api("allow-all", app, app.state.engine, fresh.district, fresh.url)
    checked = 0
    for name, type_cls in NODE_TYPES.items():
        classified = field_classes(type_cls.model)
        wanted = {
            f.graphql_name or strawberry.utils.str_converters.to_camel_case(f.python_name): src
            for f in type_cls.__strawberry_definition__.fields
            for src in [type_cls.links.get(f.python_name, f.python_name)]
            if src in classified
        }
        async with system_session(fresh.engine, reason="test: pick a record") as s:
            number = (await s.execute(select(type_cls.model.id).limit(1))).scalar()
        if number is None or not wanted:
            continue
        selection = " ".join(
            f"{g} {{ id }}"
            if g
            in {
                "residenceUnit",
                "school",
                "leadUnit",
                "areaUnit",
                "parent",
                "area",
                "unit",
                "staff",
                "targetUnit",
                "fromUnit",
                "toUnit",
                "recipientUnit",
                "actorUnit",
                "person",
            }
            else g
            for g in wanted
        )
        gid = base64.b64encode(f"{name}:{number}".encode()).decode()
        request_id = f"walk-{name}-{fresh.url[:6]}"
        response = await everything.post(
            {"query": f'{{ node(id: "{gid}") {{ ... on {name} {{ {selection} }} }} }}'},
            {"Authorization": f"Bearer {everything.token('admin')}", "X-Request-ID": request_id},
        )
        assert not response.json().get("errors"), response.json()
        if name == "Unit":
            continue  # organisation units are not personal data and are not logged per read
        async with system_session(fresh.engine, reason="test: read events") as s:
            events = (
                (
                    await s.execute(
                        select(AccessEvent).where(
                            AccessEvent.request_id == request_id,
                            AccessEvent.entity_id == number,
                            AccessEvent.kind == "read",
                        )
                    )
                )
                .scalars()
                .all()
            )
        logged = {f for e in events for f in e.fields}
        assert set(wanted.values()) <= logged, (name, set(wanted.values()) - logged)
        checked += 1
    await app.state.engine.dispose()
    assert checked >= 12


async def test_checkpoints_are_signed_periodically(fresh: Api) -> None:
    from dataclasses import replace

    from domain.access_log import AuditCheckpoint

    settings = replace(fresh.app.state.settings, audit_checkpoint_every=10)
    app = create_app(settings)
    api = Api("periodic", app, app.state.engine, fresh.district, fresh.url)
    for _ in range(4):
        await api.data("social.donghu", "{ persons(first: 8) { edges { node { name } } } }")
    async with system_session(api.engine, reason="test") as s:
        cps = (await s.execute(select(AuditCheckpoint))).scalars().all()
    assert len(cps) >= 2 and {c.reason for c in cps} == {"periodic"}
    report = await _verify(api)
    assert report.ok and report.checkpoints == len(cps)
    await app.state.engine.dispose()


async def test_a_recent_cut_is_not_a_legitimate_start(fresh: Api) -> None:
    """Deleting recent events under a permit, behind an ordinary checkpoint, is detected."""
    from audit import checkpoints
    from audit.log import chain_head

    await _some_reads(fresh)
    key = load_or_create_ed25519(fresh.app.state.settings.key_dir / AUDIT_SIGNING_KEY)
    async with system_session(fresh.engine, reason="test: a forged cut") as s:
        seq, head = await chain_head(s)
        await checkpoints.create(s, key, reason="periodic", seq=seq, head_hash=head)
        await s.commit()
    async with fresh.engine.begin() as conn:
        await conn.execute(text("INSERT INTO audit_purge_permits (id, before_seq) VALUES (1, 4)"))
        await conn.execute(text("DELETE FROM access_events WHERE seq < 4"))
        await conn.execute(text("DELETE FROM audit_purge_permits"))
    report = await _verify(fresh)
    assert not report.ok and report.broken_seq == 4
