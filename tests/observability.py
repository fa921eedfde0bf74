"""What the test suite's telemetry and logs captured, for the privacy scans.

The shared ``api`` fixtures run traced (spans exported synchronously to ``SPANS``, metrics read
by ``METRICS``), and every log record of the suite is formatted as the server formats it (JSON)
into ``LOGS``. At the end of the session ``tests/conftest.py`` scans both for the demo persons'
names, ID numbers and phones (``SECRETS``, filled when a demo district is loaded) and fails the
run on any hit.
"""

from __future__ import annotations

import io
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from api.logs import json_handler
from api.telemetry import Telemetry


@dataclass
class SpanCollector(SpanExporter):
    """Every attribute value any span carried (deduplicated: the suite makes millions of spans),
    and the spans of the most recent traces, whole, for targeted assertions."""

    values: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    recent: deque[ReadableSpan] = field(default_factory=lambda: deque(maxlen=5000))
    count: int = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self.count += 1
            self.names.add(span.name)
            self.values.add(span.name)
            for value in (span.attributes or {}).values():
                self.values.add(str(value))
            if span.status.description:  # what OpenTelemetry fills from an exception
                self.values.add(span.status.description)
            for span_event in span.events:
                self.values.add(span_event.name)
                self.values.update(str(v) for v in (span_event.attributes or {}).values())
            self.recent.append(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def of_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.recent if format(s.context.trace_id, "032x") == trace_id]


SPANS = SpanCollector()
METRICS = InMemoryMetricReader()
TELEMETRY = Telemetry.with_exporters([SPANS], [METRICS], batch=False)
LOGS = io.StringIO()
SECRETS: set[str] = set()
"""Demo persons' names, ID numbers, phones and birth dates, and the demo's sealed texts (notes,
summaries, circumstances, case text), as loaded (both backends)."""


def capture_logs() -> None:
    """Everything the app logs (``xinqiao.*`` at every level, others from WARNING), as JSON."""
    handler = json_handler(LOGS)
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    logging.getLogger("xinqiao").setLevel(logging.DEBUG)


def hits(text: str, secrets: Iterable[str]) -> list[str]:
    """Secrets found in ``text``: (masked) descriptions, never the secrets themselves."""
    return [f"{len(s)}-char value starting {s[:1]}…" for s in secrets if s and s in text]


def metric_points(name: str | None = None) -> list[tuple[dict[str, object], object]]:
    """(attributes, point) of every data point of a metric (of every metric: None), as read
    now."""
    data = METRICS.get_metrics_data()
    out: list[tuple[dict[str, object], object]] = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if name is None or metric.name == name:
                    out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return out


def metric_labels() -> set[str]:
    """Every attribute value of every metric data point so far."""
    return {str(v) for attributes, _ in metric_points() for v in attributes.values()}


async def open_sealed(
    engine: Any, ring: Any, limit: int | None = None
) -> list[tuple[Any, str, bytes, str | None]]:
    """(row, column, ciphertext, plain value) of every sealed value in the database (``limit``
    rows per table), opened through the keys as an operator holding them would."""
    from sqlalchemy import select

    from domain.base import Base
    from domain.keys import load_data_keys
    from domain.sealing import encrypted_columns, sealed_models, unseal
    from domain.session import system_session

    out: list[tuple[Any, str, bytes, str | None]] = []
    async with system_session(engine, reason="test: open every sealed value") as s:
        for model in sealed_models(Base):
            rows = list((await s.execute(select(model).limit(limit))).scalars())
            keys = await load_data_keys(s, ring, sorted({r.key_owner for r in rows}))
            for row in rows:
                for column in encrypted_columns(model):
                    raw = getattr(row, column)
                    if raw is not None:
                        out.append((row, column, raw, unseal(row, column, keys.get(row.key_owner))))
    return out
