"""Benchmark: what access logging costs per request, and how fast the log verifies.

1. Requests the privacy benchmark's page (50 cases, subjects, latest intervention) and times the
   access-log flush of each request (chain head lock, hashing, one multi-row INSERT).
2. Appends synthetic events in batches of 500 until the log holds ``--events``, then times
   ``verify_log`` over the whole chain (events per second).

Run with ``make bench``; results go to ``var/bench/audit-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from api.cli.demo import district_ids
from api.keyring import init_keys
from api.settings import Settings
from audit.keys import AUDIT_SIGNING_KEY, load_or_create_ed25519
from audit.log import RequestAccessLog, append
from audit.verify import count_events, verify_log
from domain.base import utcnow
from domain.session import system_session
from tests.bench.privacy_cost import QUERY, prepare


async def logging_cost(url: str, runs: int, key_dir: Path) -> dict[str, Any]:
    init_keys(key_dir)
    app = create_app(Settings(database_url=url, key_dir=key_dir))
    d = await district_ids(app.state.engine)
    token = app.state.tokens.issue(
        staff_id=d.staff["zongzhi"], username="zongzhi", ttl_seconds=3600
    )
    flushes: list[tuple[float, int]] = []
    original = RequestAccessLog.flush

    async def timed(self: RequestAccessLog, session: Any) -> int:
        start = time.perf_counter()
        n = await original(self, session)
        flushes.append(((time.perf_counter() - start) * 1000, n))
        return n

    RequestAccessLog.flush = timed  # type: ignore[method-assign]
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(runs):
                r = await client.post(
                    "/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"}
                )
                assert not r.json().get("errors")
    finally:
        RequestAccessLog.flush = original  # type: ignore[method-assign]
        await app.state.engine.dispose()
    ms = sorted(f for f, _ in flushes)
    events = statistics.fmean(n for _, n in flushes)
    return {
        "flush_p50_ms": round(statistics.median(ms), 2),
        "flush_p95_ms": round(ms[int(len(ms) * 0.95) - 1], 2),
        "events_per_request": round(events, 1),
    }


async def verify_throughput(url: str, target: int, key_dir: Path) -> dict[str, Any]:
    from domain.session import create_engine

    engine = create_engine(url)
    row = {
        "request_id": "bench",
        "trace_id": None,
        "operation": None,
        "operation_hash": None,
        "actor_staff_id": 1,
        "actor_username": "bench",
        "actor_unit_id": 1,
        "actor_roles": "counsellor",
        "token_id": None,
        "purpose": "treatment",
        "kind": "read",
        "outcome": "permitted",
        "entity": "person",
        "entity_id": 1,
        "person_id": 1,
        "fields": ["name", "phone"],
        "redacted": [],
        "field_classes": ["identity", "contact"],
        "relations": ["assigned"],
        "changes": None,
        "break_glass": False,
        "reason": None,
        "client_address": "127.0.0.1",
        "user_agent": "bench",
    }
    async with system_session(engine, reason="benchmark: fill the log") as s:
        have = await count_events(s)
        while have < target:
            n = min(500, target - have)
            await append(
                s, [{**row, "occurred_at": utcnow()} for _ in range(n)], algorithm="sha256"
            )
            await s.commit()
            have += n
    key = load_or_create_ed25519(key_dir / AUDIT_SIGNING_KEY)
    async with system_session(engine, reason="benchmark: verify") as s:
        start = time.perf_counter()
        report = await verify_log(s, key.public_key())
        seconds = time.perf_counter() - start
    await engine.dispose()
    assert report.ok, report.problem
    return {
        "events": report.events,
        "seconds": round(seconds, 2),
        "events_per_second": round(report.events / seconds),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{args.out / f'bench-{args.persons}.db'}"
    keys = args.out / "keys"
    await prepare(url, args.persons, keys)
    report = {
        "backend": "sqlite",
        "logging": await logging_cost(url, args.runs, keys),
        "verify": await verify_throughput(url, args.events, keys),
    }
    (args.out / "audit-cost.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
