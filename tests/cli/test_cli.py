"""The operator CLI, run as a subprocess exactly as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

XINQIAO = str(Path(sys.executable).with_name("xinqiao"))


def cli(
    args: list[str], env: dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [XINQIAO, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["db", "downgrade"],
        ["demo"],
        ["token"],
        ["schema", "export"],
        ["policy", "matrix"],
        ["audit"],
        ["audit", "verify"],
        ["audit", "checkpoint"],
        ["password"],
        ["jobs"],
        ["jobs", "run-once"],
        ["notify"],
        ["notify", "run-once"],
        ["notify", "contacts"],
        ["notify", "contacts", "add"],
        ["notify", "contacts", "list"],
        ["notify", "contacts", "remove"],
        ["partner"],
        ["partner", "register"],
        ["partner", "rotate"],
        ["partner", "revoke"],
        ["partner", "add-query"],
        ["partner", "list"],
        ["audit", "export"],
        ["audit", "purge"],
        ["audit", "report"],
    ],
)
def test_help(args: list[str]) -> None:
    result = cli([*args, "--help"], {})
    assert result.returncode == 0 and "Usage:" in result.stdout


async def test_fresh_database_demo_and_token(empty_database: str, tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    up = cli(["db", "upgrade"], env)
    assert up.returncode == 0, up.stderr
    assert cli(["keys", "init"], env).returncode == 0
    assert "0016" in up.stdout
    demo = cli(["demo", "--persons", "300", "--seed", "3"], env)
    assert demo.returncode == 0, demo.stderr
    again = cli(["demo"], env)
    assert again.returncode != 0 and "already" in again.stderr
    assert cli(["demo", "--if-empty"], env).returncode == 0
    token = cli(["token", "grid.donghu", "--ttl", "120"], env)
    assert token.returncode == 0, token.stderr
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert claims["preferred_username"] == "grid.donghu" and claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token.stdout.strip())["typ"] == "at+jwt"
    key = tmp_path / "keys" / "token-signing-ed25519.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    unknown = cli(["token", "nobody"], env)
    assert unknown.returncode != 0 and "nobody" in unknown.stderr
    # Below 0010 the columns held plaintext: with persons on file the downgrade refuses (it
    # cannot decrypt without the keys) rather than destroy or expose them.
    down = cli(["db", "downgrade", "--revision", "0013"], env)
    assert down.returncode == 0, down.stderr
    refused = cli(["db", "downgrade", "--revision", "base"], env)
    assert refused.returncode != 0 and "keys" in refused.stderr


def test_schema_check() -> None:
    result = cli(["schema", "export", "--check"], {})
    assert result.returncode == 0, result.stderr


async def test_audit_commands(empty_database: str, tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["keys", "init"], env).returncode == 0
    assert cli(["demo", "--persons", "50"], env).returncode == 0
    from api.app import create_app
    from api.keyring import init_keys
    from api.settings import Settings
    from tests.conftest import Api

    init_keys(tmp_path / "keys")
    app = create_app(Settings(database_url=empty_database, key_dir=tmp_path / "keys"))
    from api.cli.demo import district_ids

    api = Api("cli", app, app.state.engine, await district_ids(app.state.engine), empty_database)
    await api.data("teacher.school2", "{ persons(first: 20) { edges { node { name } } } }")
    await app.state.engine.dispose()
    cp = cli(["audit", "checkpoint"], env)
    assert cp.returncode == 0 and cp.stdout.startswith("xinqiao/access-log\n")
    assert "\n\n\u2014 xinqiao/access-log " in cp.stdout
    for fmt in ("jsonl", "csv", "fhir"):
        out = tmp_path / f"export.{fmt}"
        done = cli(["audit", "export", "--format", fmt, "--output", str(out)], env)
        assert done.returncode == 0 and out.stat().st_size > 0, done.stderr
    assert cli(["audit", "verify", "--file", str(tmp_path / "export.jsonl")], env).returncode == 0
    fhir = cli(["audit", "verify", "--file", str(tmp_path / "export.fhir")], env)
    assert fhir.returncode == 0 and "links" in fhir.stdout
    import json

    bundle = json.loads((tmp_path / "export.fhir").read_text())
    assert (
        bundle["resourceType"] == "Bundle"
        and bundle["entry"][0]["resource"]["resourceType"] == "AuditEvent"
    )
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    tampered = tmp_path / "tampered.jsonl"
    first = json.loads(lines[1])
    first["actor_username"] = "nobody"
    tampered.write_text("\n".join([lines[0], json.dumps(first), *lines[2:]]) + "\n")
    bad = cli(["audit", "verify", "--file", str(tampered)], env)
    assert bad.returncode == 1 and "BROKEN at sequence 2" in bad.stderr
    verify = cli(["audit", "verify"], env)
    assert verify.returncode == 0 and "1 signed checkpoints" in verify.stdout
    young = cli(["audit", "purge", "--before", "2026-01-01", "--yes"], env)
    assert young.returncode != 0 and "retention" in young.stderr
    report = cli(["audit", "report", "--since", "2020-01-01", "--until", "2100-01-01"], env)
    data = json.loads(report.stdout)
    assert data["access_events_about_minors"] > 0 and data["by_role"].get("school_counsellor")
    page = cli(
        [
            "audit",
            "report",
            "--since",
            "2020-01-01",
            "--until",
            "2100-01-01",
            "--format",
            "html",
            "--output",
            str(tmp_path / "minors.html"),
        ],
        env,
    )
    assert (
        page.returncode == 0
        and "未成年人个人信息保护合规审计报告" in (tmp_path / "minors.html").read_text()
    )


async def test_operator_credentials(empty_database: str, tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["keys", "init"], env).returncode == 0
    assert cli(["demo"], env).returncode == 0
    short = subprocess.run(
        [XINQIAO, "password", "counselor"],
        input="short\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert short.returncode != 0 and "12" in short.stderr
    ok = subprocess.run(
        [XINQIAO, "password", "counselor"],
        input="a long enough passphrase\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    reg = cli(
        [
            "partner",
            "register",
            "--name",
            "对接",
            "--unit",
            "晨光社会工作服务中心",
            "--scope",
            "read:case_admin",
            "--scope",
            "op:read_referred_cases",
        ],
        env,
    )
    assert reg.returncode == 0, reg.stderr
    client_id = reg.stdout.split("client_id=")[1].split()[0]
    doc = tmp_path / "referred.graphql"
    doc.write_text("query { cases { totalCount } }")
    added = cli(["partner", "add-query", client_id, str(doc)], env)
    assert added.returncode == 0 and len(added.stdout.strip()) == 64
    assert cli(["partner", "rotate", client_id], env).stdout.startswith("client_secret=")
    assert cli(["partner", "revoke", client_id], env).returncode == 0
    listed = cli(["partner", "list"], env)
    assert f"{client_id}\trevoked" in listed.stdout and "secret" not in listed.stdout
    bad = cli(
        [
            "partner",
            "register",
            "--name",
            "x",
            "--unit",
            "晨光社会工作服务中心",
            "--scope",
            "read:all",
        ],
        env,
    )
    assert bad.returncode != 0


async def test_the_re_encryption_command_reseals_every_sealed_table(
    empty_database: str, tmp_path: Path
) -> None:
    """`keys rotate --data-keys` run as an operator runs it (a process that imported only what
    the CLI imports) re-seals every table with encrypted columns: afterwards every value the
    demo sealed still opens, and its ciphertext changed."""
    from api.keyring import load as load_keys
    from domain.session import create_engine
    from tests.observability import open_sealed

    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    for args in (["keys", "init"], ["db", "upgrade"], ["demo", "--persons", "80"]):
        done = cli(args, env)
        assert done.returncode == 0, done.stderr[-2000:]

    async def sealed() -> dict[tuple[str, int, str], tuple[bytes, str]]:
        engine = create_engine(empty_database)
        try:
            opened = await open_sealed(engine, load_keys(tmp_path / "keys"))
        finally:
            await engine.dispose()
        # ``unseal`` raises if any value no longer opens under its owner's key.
        return {(r.__tablename__, r.id, c): (raw, plain or "") for r, c, raw, plain in opened}

    before = await sealed()
    assert {t for t, _, _ in before} >= {"persons", "cases", "interventions", "families", "alerts"}
    done = cli(["keys", "rotate", "--data-keys"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    after = await sealed()  # raises if any value no longer opens
    assert after.keys() == before.keys()
    assert all(after[k][1] == before[k][1] for k in before), "same plaintext"
    assert all(after[k][0] != before[k][0] for k in before), "every ciphertext re-sealed"


async def test_notify_contacts_and_run_once(tmp_path: Path) -> None:
    """An operator gives a unit contacts, and ``notify run-once`` delivers its alert's message
    to a real local SMS gateway; a webhook URL's key is not printed."""
    from datetime import timedelta

    from sqlalchemy import select

    from domain import models as m
    from domain.alerts import AlertStatus
    from domain.base import utcnow
    from domain.cases import RiskLevel, SourceChannel
    from domain.notifications import contact_channels, notifications_for
    from domain.session import create_engine, system_session
    from domain.units import Unit, UnitKind
    from tests.receivers import HttpReceiver

    url = f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}"
    env = {"XINQIAO_DATABASE_URL": url, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    assert cli(["db", "upgrade"], env).returncode == 0
    engine = create_engine(url)
    try:
        async with system_session(engine, reason="test: a unit") as s:
            unit = Unit(name="测试网格", kind=UnitKind.GRID)
            s.add(unit)
            await s.flush()
            unit.place_under(None)
            await s.commit()
        added = cli(["notify", "contacts", "add", "测试网格", "sms", "13800000020"], env)
        assert added.returncode == 0, added.stderr
        hook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret-key"
        assert (
            cli(["notify", "contacts", "add", str(unit.id), "webhook", hook], env).returncode == 0
        )
        twice = cli(["notify", "contacts", "add", str(unit.id), "webhook", hook], env)
        assert twice.returncode != 0 and "already" in twice.stderr
        bad = cli(["notify", "contacts", "add", str(unit.id), "webhook", "not-a-url"], env)
        assert bad.returncode != 0
        for mailbox in ("police:donghu@duty.example", "值班 <a@duty.example>", "a@x.cn, b@y.cn"):
            group = cli(["notify", "contacts", "add", str(unit.id), "email", mailbox], env)
            assert group.returncode != 0 and "plain address" in group.stderr, mailbox
        listed = cli(["notify", "contacts", "list", "--unit", "测试网格"], env)
        assert "13800000020" in listed.stdout and "qyapi.weixin.qq.com" in listed.stdout
        assert "secret-key" not in listed.stdout, "a webhook's key is a credential"
        webhook_id = next(
            line.split()[0] for line in listed.stdout.splitlines() if "webhook" in line
        )
        assert cli(["notify", "contacts", "remove", webhook_id], env).returncode == 0
        assert cli(["notify", "contacts", "remove", webhook_id], env).returncode != 0

        now = utcnow()
        async with system_session(engine, reason="test: an alert and its outbox") as s:
            alert = m.Alert(
                channel=SourceChannel.GRID_REPORT,
                risk_level=RiskLevel.LOW,
                status=AlertStatus.OPEN,
                area_unit_id=unit.id,
                target_unit_id=unit.id,
                raised_at=now,
                routed_at=now,
                ack_deadline=now + timedelta(hours=72),
            )
            s.add(alert)
            await s.flush()
            s.add_all(notifications_for([alert], await contact_channels(s, [unit.id]), now))
            await s.commit()
        with HttpReceiver() as gateway:
            sms = {"XINQIAO_SMS_URL": gateway.url("/sms"), "XINQIAO_SMS_TOKEN": "t"}
            ran = cli(["notify", "run-once"], {**env, **sms})
            assert ran.returncode == 0, ran.stderr
            assert "sent 1," in ran.stdout
            assert [r.body["to"] for r in gateway.requests] == [["13800000020"]]
            assert "sent 0," in cli(["notify", "run-once"], {**env, **sms}).stdout
        async with system_session(engine, reason="test: read the outbox") as s:
            statuses = (await s.execute(select(m.Notification.status))).scalars().all()
        assert statuses == ["sent"]
    finally:
        await engine.dispose()
