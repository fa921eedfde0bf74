"""``xinqiao``: the operator's command line (serve, database, demo data, tokens, schema)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
from sqlalchemy import select

from api.cli.audit import audit as audit_commands
from api.cli.identity import partner as partner_commands
from api.cli.identity import password as password_command
from api.cli.keys import keys as keys_commands
from api.cli.notify import notify as notify_commands
from api.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _ensure_sqlite_dir(settings: Settings) -> None:
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


@click.group(help="Xinqiao (心桥) case-management platform.")
def cli() -> None:
    pass


WS_PROTOCOL = "websockets-sansio"
"""uvicorn's implementation over the pinned ``websockets`` library. Named, not "auto": with no
WebSocket library "auto" serves HTTP only and answers every upgrade with 400, so live alerts
would fail silently in front of users while every HTTP check passed."""


def _websocket_protocol() -> str:
    """The WebSocket implementation ``serve`` hands uvicorn, or a refusal to start without it."""
    try:
        import websockets  # noqa: F401  # only whether it imports
    except ImportError as exc:
        raise click.ClickException(
            f"cannot serve live alerts: the WebSocket library 'websockets' does not import "
            f"({exc}); install the pinned dependencies: pip install -c requirements.lock -e ."
        ) from None
    return WS_PROTOCOL


@cli.command(help="Serve the GraphQL API (GraphiQL at /graphql in development mode).")
@click.option("--host", default=None, help="Bind address (default XINQIAO_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default XINQIAO_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging

    ws = _websocket_protocol()
    settings = _settings()
    _ensure_sqlite_dir(settings)
    configure_logging(os.environ.get("XINQIAO_LOG_LEVEL", "INFO"))
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        ws=ws,
        proxy_headers=False,
        server_header=False,
        log_config=None,  # ours: JSON lines with trace ids (api.logs)
        access_log=False,  # its lines carry query strings; TraceMiddleware logs requests
    )


@cli.group(help="Database schema migrations.")
def db() -> None:
    pass


@db.command(help="Upgrade the database to a revision (default: the newest).")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    from domain.session import create_engine
    from migrations import runner

    settings = _settings()
    _ensure_sqlite_dir(settings)

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            await runner.upgrade(engine, revision)
            click.echo(f"database at revision {await runner.current_revision(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(go())


@db.command(help="Downgrade the database (default: one revision back; 'base' removes everything).")
@click.option("--revision", default="-1", show_default=True)
def downgrade(revision: str) -> None:
    from domain.session import create_engine
    from migrations import runner

    settings = _settings()

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            await runner.downgrade(engine, revision)
            click.echo(f"database at revision {await runner.current_revision(engine) or 'base'}")
        finally:
            await engine.dispose()

    asyncio.run(go())


@cli.command(help="Load the demo district and N synthetic persons into an empty database.")
@click.option(
    "--persons",
    default=0,
    show_default=True,
    type=click.IntRange(0, 5_000_000),
    help="Synthetic persons to add, with families, cases and interventions.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed.")
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) if data is already loaded.")
def demo(persons: int, seed: int, if_empty: bool) -> None:
    from api.cli.demo import DemoExists, load_demo
    from api.keyring import load as load_keys
    from domain.session import create_engine

    settings = _settings()
    keys = load_keys(settings.key_dir, suite=settings.cipher_suite)

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            with click.progressbar(
                length=persons, label="synthetic persons", file=sys.stderr
            ) as bar:
                await load_demo(engine, persons=persons, seed=seed, progress=bar.update, keys=keys)
        finally:
            await engine.dispose()

    try:
        asyncio.run(go())
    except DemoExists as exc:
        if if_empty:
            click.echo("demo data already loaded")
            return
        raise click.ClickException(str(exc)) from None
    click.echo(f"demo district loaded with {persons} synthetic persons")


@cli.command(help="Print a bearer token for a staff account (an operator tool).")
@click.argument("username")
@click.option(
    "--ttl",
    default=None,
    type=click.IntRange(60, 86_400),
    help="Lifetime in seconds (default XINQIAO_TOKEN_TTL, 900).",
)
def token(username: str, ttl: int | None) -> None:
    from api.tokens import TokenService
    from domain.session import create_engine, system_session
    from domain.staff import Staff

    settings = _settings()

    async def lookup() -> int | None:
        engine = create_engine(settings.database_url)
        try:
            async with system_session(engine, reason="operator token issue") as s:
                row = (
                    await s.execute(
                        select(Staff.id, Staff.active).where(Staff.username == username)
                    )
                ).first()
        finally:
            await engine.dispose()
        return row[0] if row and row[1] else None

    staff_id = asyncio.run(lookup())
    if staff_id is None:
        raise click.ClickException(f"no active staff account named {username!r}")
    tokens = TokenService.from_key_dir(
        settings.key_dir,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    click.echo(tokens.issue(staff_id=staff_id, username=username, ttl_seconds=ttl))


@cli.group(help="The GraphQL schema file.")
def schema() -> None:
    pass


@schema.command(help="Write schema.graphql (or check it is current with --check).")
@click.option("--check", is_flag=True, help="Exit 1 if schema.graphql is stale.")
@click.option("--output", type=click.Path(path_type=Path), default=None)
def export(check: bool, output: Path | None) -> None:
    from api.graphql.schema import SCHEMA_FILE, schema_sdl

    target = output or SCHEMA_FILE
    sdl = schema_sdl()
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != sdl:
            raise click.ClickException(f"{target} is stale; run 'xinqiao schema export'")
        click.echo(f"{target} is current")
        return
    target.write_text(sdl, encoding="utf-8")
    click.echo(f"wrote {target}")


@cli.group(help="The privacy policy.")
def policy() -> None:
    pass


@policy.command(
    help="Write docs/privacy-matrix.md from the policy file (or --check it is current)."
)
@click.option("--check", is_flag=True, help="Exit 1 if the matrix is stale.")
def matrix(check: bool) -> None:
    from authz.matrix import MATRIX_FILE, render
    from authz.policy import Policy

    text = render(Policy())
    if check:
        if not MATRIX_FILE.exists() or MATRIX_FILE.read_text(encoding="utf-8") != text:
            raise click.ClickException(f"{MATRIX_FILE} is stale; run 'xinqiao policy matrix'")
        click.echo(f"{MATRIX_FILE} is current")
        return
    MATRIX_FILE.parent.mkdir(parents=True, exist_ok=True)
    MATRIX_FILE.write_text(text, encoding="utf-8")
    click.echo(f"wrote {MATRIX_FILE}")


@cli.group(help="Scheduled work, for cron (the server also runs it every minute).")
def jobs() -> None:
    pass


@jobs.command("run-once", help="Escalate overdue alerts once; safe alongside other runs.")
def run_once() -> None:
    from api.jobs import escalate_overdue
    from domain.session import create_engine

    settings = _settings()

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await escalate_overdue(
                engine, hash_alg=settings.audit_hash, deadlines=settings.ack_deadlines
            )
        finally:
            await engine.dispose()

    click.echo(f"escalated {asyncio.run(go())} overdue alerts")


@jobs.command(
    "check-paths",
    help="List units whose alerts could reach nobody able to act (exit 1 if any).",
)
def check_paths() -> None:
    from api.jobs import units_without_anyone_to_act
    from domain.session import create_engine

    settings = _settings()

    async def go() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            return await units_without_anyone_to_act(engine)
        finally:
            await engine.dispose()

    stranded = asyncio.run(go())
    for name in stranded:
        click.echo(f"nobody can act on alerts at or above: {name}")
    if stranded:
        raise SystemExit(1)
    click.echo("every unit's alerts reach someone who can act")


cli.add_command(audit_commands)
cli.add_command(partner_commands)
cli.add_command(password_command)
cli.add_command(keys_commands)
cli.add_command(notify_commands)

if __name__ == "__main__":
    cli()
