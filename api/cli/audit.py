"""``xinqiao audit``: verify, checkpoint, export, purge and report on the access log."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.settings import Settings
from audit import checkpoints, export, retention
from audit.keys import AUDIT_SIGNING_KEY, load_or_create_ed25519
from audit.log import RequestAccessLog, chain_head
from audit.reports import minors_report
from audit.verify import Report, count_events, verify_events, verify_log
from domain.disclosure import AccessKind, Actor, Disclosure
from domain.session import create_engine, system_session

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{name} must be an ISO date or time, e.g. 2026-01-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _signing_key(settings: Settings, *, create: bool = True) -> Any:
    return load_or_create_ed25519(settings.key_dir / AUDIT_SIGNING_KEY, create=create)


def _print_report(report: Report) -> None:
    click.echo(
        f"checked {report.events} events ({report.first_seq or '-'}..{report.last_seq or '-'}) "
        f"and {report.checkpoints} signed checkpoints"
    )
    if not report.ok:
        click.echo(f"BROKEN at sequence {report.broken_seq}: {report.problem}", err=True)
        raise SystemExit(1)
    click.echo("the access log verifies")


@click.group(help="The tamper-evident access log.")
def audit() -> None:
    pass


@audit.command(help="Verify the whole chain and every signed checkpoint (or an exported file).")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, path_type=Path),
    help="Verify an exported JSON Lines or FHIR file on its own instead.",
)
def verify(path: Path | None) -> None:
    settings = Settings.from_env()
    if path is not None:
        events, links_only = _read_export(path)
        if links_only:
            click.echo("FHIR export: checking sequence and hash links (content is in jsonl/csv)")
        _print_report(verify_events(events, links_only=links_only))
        return
    public = _signing_key(settings, create=False).public_key()  # never invent a key to verify with

    async def work(engine: AsyncEngine) -> Report:
        async with system_session(engine, reason="audit verify") as s:
            total = await count_events(s)
            with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
                return await verify_log(s, public, progress=bar.update)

    _print_report(_run(settings, work))


def _read_export(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Events of a jsonl or FHIR export, and whether only their links can be checked."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole.get("resourceType") == "Bundle":
        return [export.event_from_fhir(e["resource"]) for e in whole.get("entry", [])], True
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()], False
    except ValueError:
        raise click.ClickException(f"{path} is neither JSON Lines nor a FHIR Bundle") from None


@audit.command(help="Sign a checkpoint of the current chain head and print it.")
def checkpoint() -> None:
    settings = Settings.from_env()
    key = _signing_key(settings)

    async def work(engine: AsyncEngine) -> str:
        async with system_session(engine, reason="audit checkpoint") as s:
            seq, head = await chain_head(s)
            cp = await checkpoints.create(
                s, key, reason="manual", seq=seq, head_hash=head, hash_alg=settings.audit_hash
            )
            await s.commit()
            return cp.note

    click.echo(_run(settings, work), nl=False)


@audit.command("export", help="Export events (with their chain hashes) as jsonl, csv or fhir.")
@click.option("--since", help="ISO date/time, inclusive.")
@click.option("--until", help="ISO date/time, exclusive.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "fhir"]),
    default="jsonl",
    show_default=True,
)
@click.option("--output", type=click.Path(path_type=Path), help="File (default: standard output).")
def export_cmd(since: str | None, until: str | None, fmt: str, output: Path | None) -> None:
    settings = Settings.from_env()
    start, end = _when(since, "--since"), _when(until, "--until")

    async def work(engine: AsyncEngine) -> int:
        count = 0
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            async with system_session(engine, reason="audit export") as s:
                if fmt == "csv":
                    out.write(export.csv_header())
                entries = []
                async for event in export.events(s, start, end):
                    count += 1
                    if fmt == "jsonl":
                        out.write(export.jsonl_line(event))
                    elif fmt == "csv":
                        out.write(export.csv_line(event))
                    else:
                        entries.append(
                            {
                                "fullUrl": f"urn:uuid:xq-{event['seq']}",
                                "resource": export.fhir_audit_event(event),
                            }
                        )
                if fmt == "fhir":
                    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
                    out.write(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n")
                await _log_operator_action(s, settings, "export", f"export_{fmt}", count)
        finally:
            if output:
                out.close()
        return count

    count = _run(settings, work)
    click.echo(f"exported {count} events", err=True)


async def _log_operator_action(
    session: AsyncSession, settings: Settings, kind: str, reason: str, count: int
) -> None:
    """Operator actions on the log are themselves logged (an export is a disclosure)."""
    log = RequestAccessLog(
        request_id=f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        actor=Actor(None, f"cli:{getpass.getuser()}", None, ("operator",)),
        purpose="audit",
        hash_alg=settings.audit_hash,
    )
    log.record(Disclosure(AccessKind(kind), "access_event", None, reason=f"{reason}:{count}"))
    await log.flush(session)
    await session.commit()


@audit.command(
    help="Delete events older than the retention period, signing a checkpoint at the cut."
)
@click.option("--before", help="ISO date; default: now minus XINQIAO_AUDIT_RETENTION_DAYS.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(before: str | None, yes: bool) -> None:
    settings = Settings.from_env()
    now = datetime.now(UTC)
    keep = timedelta(days=settings.audit_retention_days)
    cut = _when(before, "--before") or now - keep
    if not yes:
        click.confirm(f"Delete access events before {cut.isoformat()}?", abort=True)
    key = _signing_key(settings)

    async def work(engine: AsyncEngine) -> retention.PurgeResult:
        async with system_session(engine, reason="audit retention purge") as s:
            return await retention.purge(s, key, before=cut, now=now, retention=keep)

    try:
        result = _run(settings, work)
    except retention.RetentionRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"deleted {result.deleted} events; signed checkpoint at {result.cut_seq}")


@audit.command(help="The minors' personal-information compliance report for a period.")
@click.option("--since", required=True, help="ISO date, inclusive.")
@click.option("--until", required=True, help="ISO date, exclusive.")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "html"]), default="json", show_default=True
)
@click.option("--output", type=click.Path(path_type=Path))
def report(since: str, until: str, fmt: str, output: Path | None) -> None:
    settings = Settings.from_env()
    start, end = _when(since, "--since"), _when(until, "--until")
    assert start is not None and end is not None

    async def work(engine: AsyncEngine) -> str:
        async with system_session(engine, reason="minors compliance report") as s:
            r = await minors_report(s, since=start, until=end, now=datetime.now(UTC))
        data = r.as_json()
        return (
            json.dumps(data, ensure_ascii=False, indent=2) + "\n" if fmt == "json" else r.as_html()
        )

    text = _run(settings, work)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


__all__ = ["audit"]
