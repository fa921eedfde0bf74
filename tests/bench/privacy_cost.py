"""Benchmark: what the privacy layer costs on a realistic page.

A page of 50 cases with their subject persons and latest intervention, requested over HTTP (in
process, through authentication, the gate, the access log and GraphQL), for the same account
under the real policy and under the allow-all policy (same gate, every decision "yes"). Run with
``make bench``; not part of ``make test``. Results go to ``var/bench/privacy-cost.json``.
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
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from api.app import create_app
from api.cli.demo import DemoExists, district_ids, load_demo
from api.keyring import init_keys
from api.keyring import load as load_keys
from api.settings import Settings
from api.telemetry import Telemetry
from authz.policy import AllowAllPolicy, Policy
from domain.session import create_engine
from migrations import runner

QUERY = """{ cases(first: 50) { edges { node {
  id status riskLevel openedAt presentingProblem diagnosis redactedFields
  subject { id maskedName name gender ageBand phone idNumber redactedFields }
  interventions(first: 1) { kind performedAt notes }
} } } }"""


async def prepare(url: str, persons: int, key_dir: Path) -> None:
    engine = create_engine(url)
    await runner.upgrade(engine)
    init_keys(key_dir)
    try:
        await load_demo(engine, persons=persons, seed=1, keys=load_keys(key_dir))
        print(f"loaded demo district with {persons} synthetic persons")
    except DemoExists:
        pass
    await engine.dispose()


class _Layers(SpanExporter):
    """Spans made and exported (batched, as in production) to memory: the tracing cost, and
    what each layer of a request took, read from the request's own spans."""

    def __init__(self) -> None:
        self.by_trace: dict[int, dict[str, float]] = {}

    def export(self, spans: Any) -> SpanExportResult:
        for span in spans:
            name = "db (all statements)" if span.name.startswith("db ") else span.name
            layers = self.by_trace.setdefault(span.context.trace_id, {})
            layers[name] = layers.get(name, 0.0) + (span.end_time - span.start_time) / 1e6
        return SpanExportResult.SUCCESS

    def medians(self, skip: int) -> dict[str, float]:
        """Per layer, the median over requests (after ``skip`` warm-up requests) of its time
        in one request, in ms. Layers nest: statements run inside row loads and the log write."""
        traces = list(self.by_trace.values())[skip:]
        names = sorted({n for t in traces for n in t})
        return {n: round(statistics.median(t.get(n, 0.0) for t in traces), 2) for n in names}


async def measure(
    url: str,
    policy: Policy,
    user: str,
    runs: int,
    key_dir: Path,
    telemetry: Telemetry | None = None,
) -> list[float]:
    init_keys(key_dir)
    app = create_app(
        Settings(database_url=url, key_dir=key_dir),
        policy=policy,
        telemetry=telemetry or Telemetry(),
    )
    d = await district_ids(app.state.engine)
    token = app.state.tokens.issue(staff_id=d.staff[user], username=user, ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {token}"}
    timings: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for i in range(runs + 10):
            start = time.perf_counter()
            response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
            elapsed = time.perf_counter() - start
            body: dict[str, Any] = response.json()
            assert not body.get("errors"), body.get("errors")
            assert len(body["data"]["cases"]["edges"]) == 50
            if i >= 10:  # warm-up excluded
                timings.append(elapsed * 1000)
    await app.state.engine.dispose()
    return timings


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--user", default="zongzhi")
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{args.out / f'bench-{args.persons}.db'}"
    keys = args.out / "keys"
    await prepare(url, args.persons, keys)
    results = {}
    layers = _Layers()
    traced = Telemetry.with_exporters([layers], [])
    for name, policy, telemetry in (
        ("privacy", Policy(), None),
        ("privacy_traced", Policy(), traced),
        ("allow_all", AllowAllPolicy(), None),
    ):
        results[name] = summary(await measure(url, policy, args.user, args.runs, keys, telemetry))
    traced.shutdown()
    ratio = results["privacy"]["p50_ms"] / results["allow_all"]["p50_ms"]
    tracing = results["privacy_traced"]["p50_ms"] / results["privacy"]["p50_ms"]
    report = {
        "query": "50 cases + subject person + latest intervention, over HTTP in process",
        "account": args.user,
        "persons": args.persons,
        "runs": args.runs,
        "backend": "sqlite",
        **results,
        "ratio_p50_privacy_over_allow_all": round(ratio, 3),
        "ratio_p50_traced_over_untraced": round(tracing, 3),
        "layers_ms_p50": layers.medians(skip=10),
    }
    (args.out / "privacy-cost.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
