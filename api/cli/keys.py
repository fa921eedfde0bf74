"""``xinqiao keys``: create, rotate and retire the key-encryption keys (docs/encryption.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import click

from api import keyring
from api.settings import Settings
from domain.session import create_engine

DUE = 3
"""``keys status`` exit code when a rotation or a retirement is due (for cron and monitoring)."""


@click.group(help="Field-encryption keys: init, add-version, rotate, retire, status.")
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
@click.option(
    "--data-keys",
    is_flag=True,
    help="Re-encrypt: fresh material for every data key, its records re-sealed (one owner per "
    "transaction; --batch keys between progress lines).",
)
def rotate(batch: int, data_keys: bool) -> None:
    settings = Settings.from_env()
    ring = keyring.load(settings.key_dir, suite=settings.cipher_suite)
    verb = "re-keyed" if data_keys else "re-wrapped"

    def shown(done: int, total: int) -> None:
        click.echo(f"{verb} {done}/{total}", err=True)

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            await keyring.verify(engine, ring)
            work = keyring.rekey if data_keys else keyring.rotate
            return await work(engine, ring, batch=batch, progress=shown)
        finally:
            await engine.dispose()

    count = asyncio.run(go())
    if data_keys:
        click.echo(
            f"{count} data keys re-keyed and their records re-sealed, wrapped under version "
            f"{ring.current.version}"
        )
    else:
        click.echo(f"{count} data keys now wrapped under version {ring.current.version}")


@keys.command(help="Retire a version no data key needs any more (then destroy its key file).")
@click.argument("version", type=int, required=False)
@click.option("--due", is_flag=True, help="Retire exactly the versions `keys status` shows due.")
@click.option(
    "--destroy-files", is_flag=True, help="With --due: also delete their kek-v<N>.key files."
)
def retire(version: int | None, due: bool, destroy_files: bool) -> None:
    settings = Settings.from_env()
    if due == (version is not None):
        raise click.UsageError("give a VERSION or --due, not both")
    if destroy_files and not due:
        raise click.UsageError("--destroy-files goes with --due")

    async def go() -> list[int]:
        engine = create_engine(settings.database_url)
        try:
            if version is not None:
                await keyring.retire(engine, version)
                return [version]
            return await keyring.retire_due(
                engine,
                retention_days=settings.backup_retention_days,
                key_dir=settings.key_dir if destroy_files else None,
            )
        finally:
            await engine.dispose()

    retired = asyncio.run(go())
    for v in retired:
        if destroy_files:
            click.echo(
                f"version {v} retired; deleted {settings.key_dir}/kek-v{v}.key: destroy every "
                f"other copy (secret store XINQIAO_KEK_V{v}, key backups)"
            )
        else:
            click.echo(f"version {v} retired: destroy kek-v{v}.key everywhere it is kept")
    if not retired:
        click.echo("no version is due for retirement")


@keys.command(
    help="The KEK schedule: versions, data keys per version, what is due. Exits 3 when a "
    "rotation or a retirement is due (for cron and monitoring), else 0."
)
def status() -> None:
    settings = Settings.from_env()

    async def go() -> keyring.KeyStatus:
        engine = create_engine(settings.database_url)
        try:
            return await keyring.status(
                engine,
                rotation_days=settings.kek_rotation_days,
                retention_days=settings.backup_retention_days,
            )
        finally:
            await engine.dispose()

    state = asyncio.run(go())
    click.echo(_table(state))
    for line in _advice(state, settings):
        click.echo(line)
    if state.due:
        raise SystemExit(DUE)


def _day(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d")


def _table(state: keyring.KeyStatus) -> str:
    if not state.versions:
        return "no key version recorded yet (the server records it at its first start)"
    lines = [f"{'version':>7}  {'created':10}  {'emptied':10}  {'retired':10}  {'data keys':>9}"]
    for v in state.versions:
        due = "rotation due" if v.rotation_due else "retire due" if v.retire_due else ""
        lines.append(
            f"{v.version:>7}  {_day(v.created_at):10}  {_day(v.emptied_at):10}  "
            f"{_day(v.retired_at):10}  {v.data_keys:>9}  {due}".rstrip()
        )
    return "\n".join(lines)


def _advice(state: keyring.KeyStatus, settings: Settings) -> list[str]:
    """What to do, in words an operator on call can follow."""
    out = []
    for v in state.versions:
        if v.rotation_due and v.newest:
            out.append(
                f"rotation due: version {v.version} is older than {settings.kek_rotation_days} "
                "days (XINQIAO_KEK_ROTATION_DAYS): `xinqiao keys add-version`, a rolling restart, "
                "then `xinqiao keys rotate`"
            )
        elif v.rotation_due:
            out.append(
                f"rotation due: {v.data_keys} data keys are still wrapped under version "
                f"{v.version}: `xinqiao keys rotate` (after a rolling restart)"
            )
        if v.retire_due:
            out.append(
                f"retire due: version {v.version} has wrapped nothing for more than "
                f"{settings.backup_retention_days} days (XINQIAO_BACKUP_RETENTION_DAYS), so no "
                "kept backup needs it: `xinqiao keys retire --due --destroy-files`"
            )
        if not v.newest and v.retired_at is None and v.data_keys == 0 and v.emptied_at is None:
            out.append(
                f"version {v.version} wraps nothing but when it was emptied is not recorded: "
                "run `xinqiao keys rotate` to record it"
            )
    if state.rekey_pending:
        out.append(
            f"a data-key re-encryption has {state.rekey_pending} keys left: "
            "`xinqiao keys rotate --data-keys` resumes it"
        )
    return out
