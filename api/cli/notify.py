"""``xinqiao notify``: deliver the notification outbox once (for cron, or a server run with
``XINQIAO_NOTIFY_SECONDS=0``), and manage units' duty contacts (where their alerts are sent)."""

from __future__ import annotations

import asyncio
from email.utils import parseaddr
from urllib.parse import urlsplit

import click
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import channels
from api.delivery import Delivery
from api.settings import Settings
from domain.notifications import Channel, UnitContact
from domain.session import create_engine, session_factory
from domain.units import Unit


@click.group(help="Alert notifications outside the browser: delivery and units' contacts.")
def notify() -> None:
    pass


@notify.command(
    "run-once",
    help="Deliver due notifications once, retrying and escalating as the server does; safe "
    "alongside the server's own worker and other runs.",
)
def run_once() -> None:
    settings = Settings.from_env()
    senders = channels.from_settings(settings.notify)
    if not senders:
        click.echo("no channel configured (XINQIAO_SMTP_HOST, XINQIAO_SMS_URL, ...)", err=True)

    async def go() -> str:
        engine = create_engine(settings.database_url)
        try:
            report = await Delivery.from_settings(
                engine,
                senders,
                settings.notify,
                hash_alg=settings.audit_hash,
                deadlines=settings.ack_deadlines,
            ).run()
        finally:
            await engine.dispose()
        return (
            f"sent {report.sent}, to retry {report.failed}, dead {report.dead}, "
            f"alerts escalated {report.escalated}"
        )

    click.echo(asyncio.run(go()))


@notify.group(help="Where each unit is told about its alerts (duty mailbox, phone, webhook).")
def contacts() -> None:
    pass


CHANNELS = click.Choice([c.value for c in Channel])


def _plain_mailbox(address: str) -> bool:
    """One bare address: a display name, a group (``name: a@b;``) or a list would be parsed by
    the mail library into other recipients than the operator typed."""
    name, parsed = parseaddr(address.strip())
    return (
        not name
        and parsed == address.strip()
        and parsed.count("@") == 1
        and all(c not in parsed for c in ":;,<>() ")
    )


@contacts.command("add", help="Add a contact: UNIT (id or exact name), CHANNEL, ADDRESS.")
@click.argument("unit")
@click.argument("channel", type=CHANNELS)
@click.argument("address")
def add(unit: str, channel: str, address: str) -> None:
    settings = Settings.from_env()
    kind = Channel(channel)
    if kind is Channel.WEBHOOK and urlsplit(address).scheme not in ("http", "https"):
        raise click.BadParameter("a webhook contact is an http(s) URL", param_hint="ADDRESS")
    if kind is Channel.EMAIL and not _plain_mailbox(address):
        raise click.BadParameter(
            "an email contact is one plain address (name@host, no display name, group or list)",
            param_hint="ADDRESS",
        )

    async def go() -> tuple[int, str]:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as s:
                found = await _unit(s, unit)
                row = UnitContact(unit_id=found.id, channel=kind, address=address.strip())
                s.add(row)
                await s.commit()
                return row.id, found.name
        finally:
            await engine.dispose()

    try:
        contact_id, name = asyncio.run(go())
    except IntegrityError:
        raise click.ClickException("that unit already has this contact") from None
    click.echo(f"contact {contact_id}: {name} {kind.value} {shown(kind, address)}")


@contacts.command("remove", help="Remove a contact by its id (see list).")
@click.argument("contact_id", type=int)
def remove(contact_id: int) -> None:
    settings = Settings.from_env()

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as s:
                done = await s.execute(
                    delete(UnitContact)
                    .where(UnitContact.id == contact_id)
                    .returning(UnitContact.id)
                    .execution_options(synchronize_session=False)
                )
                count = len(done.all())
                await s.commit()
                return count
        finally:
            await engine.dispose()

    if not asyncio.run(go()):
        raise click.ClickException(f"no contact {contact_id}")
    click.echo(f"removed contact {contact_id}")


@contacts.command("list", help="List contacts (webhook URLs shown without their keys).")
@click.option("--unit", default=None, help="Only this unit (id or exact name).")
def list_contacts(unit: str | None) -> None:
    settings = Settings.from_env()

    async def go() -> list[tuple[int, str, Channel, str]]:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as s:
                c = UnitContact
                stmt = select(c.id, Unit.name, c.channel, c.address).join(
                    Unit, Unit.id == c.unit_id
                )
                if unit is not None:
                    stmt = stmt.where(c.unit_id == (await _unit(s, unit)).id)
                rows = await s.execute(stmt.order_by(c.unit_id, c.channel, c.id))
                return [(i, n, Channel(ch), a) for i, n, ch, a in rows]
        finally:
            await engine.dispose()

    for contact_id, name, kind, address in asyncio.run(go()):
        click.echo(f"{contact_id}\t{name}\t{kind.value}\t{shown(kind, address)}")


async def _unit(s: AsyncSession, unit: str) -> Unit:
    where = Unit.id == int(unit) if unit.isdigit() else Unit.name == unit
    found = (await s.execute(select(Unit).where(where))).scalars().all()
    if len(found) != 1:
        raise click.ClickException(f"no single unit {unit!r} (give its id)")
    return found[0]


def shown(kind: Channel, address: str) -> str:
    """A webhook URL's key is a credential: print its scheme, host and path only."""
    if kind is not Channel.WEBHOOK:
        return address
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")
