"""Verify the whole access log: every link of the chain and every signed checkpoint.

Reports the first broken sequence number and what is wrong; reads in keyset pages so memory stays
flat on long logs, and reports progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from audit.chain import CHAINED_FIELDS, GENESIS, Event, event_hash
from audit.checkpoints import BadCheckpoint
from audit.checkpoints import verify as verify_note
from audit.log import chain_head
from domain.access_log import AccessEvent, AuditCheckpoint
from domain.base import utcnow

MIN_RETENTION = timedelta(days=180)

PAGE = 5000
COLUMNS = [getattr(AccessEvent, name) for name in (*CHAINED_FIELDS, "hash")]


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def fail(self, seq: int | None, problem: str) -> Report:
        if self.problem is None:
            self.broken_seq, self.problem = seq, problem
        return self


class ChainChecker:
    """Feeds events in sequence order; remembers the first problem."""

    def __init__(
        self, report: Report, start_prev: dict[int, str], *, links_only: bool = False
    ) -> None:
        self.report = report
        self.links_only = links_only
        self.start_prev = start_prev
        self.prev_seq: int | None = None
        self.prev_hash: str | None = None

    def feed(self, event: Event) -> bool:
        r = self.report
        seq = int(event["seq"])
        if self.prev_seq is None:
            r.first_seq = seq
            expected = GENESIS if seq == 1 else self.start_prev.get(seq - 1)
            if expected is None:
                r.fail(seq, f"the log starts at {seq} but no signed checkpoint covers {seq - 1}")
                return False
        else:
            if seq != self.prev_seq + 1:
                r.fail(self.prev_seq + 1, f"sequence gap: {self.prev_seq} is followed by {seq}")
                return False
            expected = self.prev_hash
        if event["prev_hash"] != expected:
            r.fail(seq, "prev_hash does not match the previous event (deleted or reordered?)")
            return False
        if not self.links_only and event_hash(event) != event["hash"]:
            r.fail(seq, "content does not match its hash (edited?)")
            return False
        self.prev_seq, self.prev_hash = seq, event["hash"]
        r.events += 1
        r.last_seq = seq
        return True


async def verify_log(
    session: AsyncSession,
    public: Ed25519PublicKey,
    progress: Callable[[int], None] | None = None,
) -> Report:
    report = Report()
    checkpoints = (
        (await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
        .scalars()
        .all()
    )
    signed: dict[int, str] = {}
    cuts: dict[int, str] = {}
    oldest_cut = utcnow() - MIN_RETENTION
    for cp in checkpoints:
        try:
            body = verify_note(cp.note, public)
        except BadCheckpoint as exc:
            return report.fail(cp.seq, f"checkpoint {cp.id}: {exc}")
        if (body.seq, body.head_hash) != (cp.seq, cp.head_hash):
            return report.fail(cp.seq, f"checkpoint {cp.id}: stored values differ from its note")
        signed[cp.seq] = cp.head_hash
        # Only a signed purge whose cut is older than the legal minimum may start the log.
        if body.reason == "purge" and body.at and datetime.fromisoformat(body.at) < oldest_cut:
            cuts[cp.seq] = cp.head_hash
        report.checkpoints += 1
    checker = ChainChecker(report, cuts)
    after = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(*COLUMNS)
                    .where(AccessEvent.seq > after)
                    .order_by(AccessEvent.seq)
                    .limit(PAGE)
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        for row in rows:
            if not checker.feed(row):
                return report
            if row["seq"] in signed and signed[row["seq"]] != row["hash"]:
                return report.fail(row["seq"], "event differs from a signed checkpoint")
        after = rows[-1]["seq"]
        if progress:
            progress(len(rows))
    head_seq, head_hash = await chain_head(session)
    if report.last_seq is not None and (head_seq, head_hash) != (
        report.last_seq,
        checker.prev_hash,
    ):
        return report.fail(head_seq, "chain head does not match the last event (truncated?)")
    for seq in signed:
        if seq > (report.last_seq or 0):
            return report.fail(seq, "a signed checkpoint is beyond the end of the log (truncated?)")
    return report


def verify_events(events: Iterable[Mapping[str, Any]], *, links_only: bool = False) -> Report:
    """Verify an exported slice on its own: links within it and, unless ``links_only`` (FHIR
    exports, which do not carry the canonical content), each event's hash."""
    report = Report()
    checker: ChainChecker | None = None
    for event in events:
        if checker is None:  # the slice's first event vouches for its own predecessor
            start = {int(event["seq"]) - 1: str(event["prev_hash"])}
            checker = ChainChecker(report, start, links_only=links_only)
        if not checker.feed(event):
            break
    return report


async def count_events(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(AccessEvent))).scalar_one())
