"""``xinqiao keys``: create, rotate and retire the key-encryption keys (docs/encryption.md)."""

from __future__ import annotations

import asyncio

import click

from api import keyring
from api.settings import Settings
from domain.session import create_engine


@click.group(help="Field-encryption keys: init, add-version, rotate, retire.")
def keys() -> None:
    pass


@keys.command(help="Create the first key-encryption key and the blind-index key if absent.")
def init() -> None:
    settings = Settings.from_env()
    made = keyring.init_keys(settings.key_dir)
    for path in made:
        click.echo(f"created {path} (mode 0600; back it up apart from the database)")
    if not made:
        click.echo(f"keys already present in {settings.key_dir}")


@keys.command("add-version", help="Create the next key-encryption-key version (then rotate).")
def add_version() -> None:
    settings = Settings.from_env()
    click.echo(f"created {keyring.add_version(settings.key_dir)}")


@keys.command(help="Re-wrap every data key under the newest version; resumable, online.")
@click.option("--batch", default=500, show_default=True, help="Data keys per transaction.")
def rotate(batch: int) -> None:
    settings = Settings.from_env()
    ring = keyring.load(settings.key_dir, suite=settings.cipher_suite)

    def shown(done: int, total: int) -> None:
        click.echo(f"re-wrapped {done}/{total}", err=True)

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            await keyring.verify(engine, ring)
            return await keyring.rotate(engine, ring, batch=batch, progress=shown)
        finally:
            await engine.dispose()

    count = asyncio.run(go())
    click.echo(f"{count} data keys now wrapped under version {ring.current.version}")


@keys.command(help="Retire a version no data key needs any more (then destroy its key file).")
@click.argument("version", type=int)
def retire(version: int) -> None:
    settings = Settings.from_env()

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            await keyring.retire(engine, version)
        finally:
            await engine.dispose()

    asyncio.run(go())
    click.echo(f"version {version} retired: destroy kek-v{version}.key everywhere it is kept")
