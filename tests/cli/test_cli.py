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
    ],
)
def test_help(args: list[str]) -> None:
    result = cli([*args, "--help"], {})
    assert result.returncode == 0 and "Usage:" in result.stdout


async def test_fresh_database_demo_and_token(empty_database: str, tmp_path: Path) -> None:
    env = {"XINQIAO_DATABASE_URL": empty_database, "XINQIAO_KEY_DIR": str(tmp_path / "keys")}
    up = cli(["db", "upgrade"], env)
    assert up.returncode == 0, up.stderr
    assert "0003" in up.stdout
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
    down = cli(["db", "downgrade", "--revision", "base"], env)
    assert down.returncode == 0, down.stderr


def test_schema_check() -> None:
    result = cli(["schema", "export", "--check"], {})
    assert result.returncode == 0, result.stderr
