"""``xinqiao password`` and ``xinqiao partner``: credentials, for operators."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.graphql.guard import sha256_of
from api.identity import IdentityError, check_scopes, hash_secret, new_client_secret, set_password
from api.settings import Settings
from domain.identity import PartnerClient, PersistedQuery
from domain.session import create_engine, system_session
from domain.units import Unit

T = TypeVar("T")


def _run(work: Callable[[AsyncEngine, Settings], Awaitable[T]]) -> T:
    settings = Settings.from_env()

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(go())


@click.command(help="Set a staff account's password (read from standard input or a prompt).")
@click.argument("username")
def password(username: str) -> None:
    secret = (
        sys.stdin.readline().rstrip("\n")
        if not sys.stdin.isatty()
        else click.prompt("New password", hide_input=True, confirmation_prompt=True)
    )

    async def work(engine: AsyncEngine, _settings: Settings) -> bool:
        return await set_password(engine, username, secret)

    try:
        found = _run(work)
    except IdentityError as exc:
        raise click.ClickException(exc.message) from None
    if not found:
        raise click.ClickException(f"no staff account named {username!r}")
    click.echo(f"password set for {username}")


@click.group(help="Partner agencies' API clients.")
def partner() -> None:
    pass


@partner.command("register", help="Register a client for a partner unit; prints its secret once.")
@click.option("--name", required=True)
@click.option("--unit", "unit_name", required=True, help="The partner unit's exact name.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="read:<class> or op:<operation>; repeat for several.",
)
def register(name: str, unit_name: str, scopes: tuple[str, ...]) -> None:
    try:
        chosen = check_scopes(list(scopes))
    except IdentityError as exc:
        raise click.ClickException(exc.message) from None
    secret = new_client_secret()

    async def work(engine: AsyncEngine, settings: Settings) -> str:
        async with system_session(engine, reason="operator: register partner client") as s:
            unit = (
                await s.execute(select(Unit).where(Unit.name == unit_name))
            ).scalar_one_or_none()
            if unit is None:
                raise click.ClickException(f"no unit named {unit_name!r}")
            client = PartnerClient(
                client_id=f"pc_{secrets.token_hex(8)}",
                name=name,
                unit_id=unit.id,
                secret_hash=hash_secret(secret),
                scopes=chosen,
                audience=settings.token_audience,
                created_at=datetime.now(UTC),
            )
            s.add(client)
            await s.commit()
            return client.client_id

    client_id = _run(work)
    click.echo(f"client_id={client_id}")
    click.echo(f"client_secret={secret}")
    click.echo("store the secret now: only its hash is kept", err=True)


async def _client(s: AsyncSession, client_id: str) -> PartnerClient:
    client = (
        await s.execute(select(PartnerClient).where(PartnerClient.client_id == client_id))
    ).scalar_one_or_none()
    if client is None:
        raise click.ClickException(f"no partner client {client_id!r}")
    return client


@partner.command(help="Issue a new secret; the old one stops working at once.")
@click.argument("client_id")
def rotate(client_id: str) -> None:
    secret = new_client_secret()

    async def work(engine: AsyncEngine, _settings: Settings) -> None:
        async with system_session(engine, reason="operator: rotate partner secret") as s:
            client = await _client(s, client_id)
            client.secret_hash = hash_secret(secret)
            client.secret_rotated_at = datetime.now(UTC)
            await s.commit()

    _run(work)
    click.echo(f"client_secret={secret}")


@partner.command(help="Revoke a client; its tokens stop working on their next use.")
@click.argument("client_id")
def revoke(client_id: str) -> None:
    async def work(engine: AsyncEngine, _settings: Settings) -> None:
        async with system_session(engine, reason="operator: revoke partner client") as s:
            client = await _client(s, client_id)
            client.revoked_at = client.revoked_at or datetime.now(UTC)
            await s.commit()

    _run(work)
    click.echo(f"revoked {client_id}")


@partner.command("add-query", help="Register a GraphQL document a client may run.")
@click.argument("client_id")
@click.argument("document", type=click.Path(exists=True, path_type=Path))
def add_query(client_id: str, document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    digest = sha256_of(text)

    async def work(engine: AsyncEngine, _settings: Settings) -> None:
        async with system_session(engine, reason="operator: register persisted query") as s:
            client = await _client(s, client_id)
            s.add(
                PersistedQuery(
                    client_id=client.id,
                    sha256=digest,
                    name=document.stem,
                    document=text,
                    created_at=datetime.now(UTC),
                )
            )
            await s.commit()

    _run(work)
    click.echo(digest)


@partner.command("list", help="List clients (never their secrets).")
def list_clients() -> None:
    async def work(engine: AsyncEngine, _settings: Settings) -> Sequence[PartnerClient]:
        async with system_session(engine, reason="operator: list partner clients") as s:
            return (
                (await s.execute(select(PartnerClient).order_by(PartnerClient.id))).scalars().all()
            )

    for c in _run(work):
        state = "revoked" if c.revoked_at else "active"
        click.echo(f"{c.client_id}\t{state}\t{c.name}\t{' '.join(c.scopes)}")
