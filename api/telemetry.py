"""Telemetry: traces and metrics with the OpenTelemetry SDK, configured by the standard
``OTEL_*`` environment variables, and the trace id every request carries.

What is traced, and why only this: a span per HTTP request, per GraphQL operation, per database
statement, per gated row load (rows and decisions), per batch of data keys unwrapped and per
access-log write. Never a span per field: strawberry's field-level OpenTelemetry extension
multiplies list execution time several times and copies resolver arguments (personal data) into
span attributes (ENGINEERING-NOTES.md). Attributes are counts, names, hashes and codes, never
values: ``tests/api/test_telemetry.py`` checks every attribute the whole suite produced.

Off unless asked for: with no exporter set, the tracer and meter are OpenTelemetry's no-op ones
and no database hook is installed, so the cost is a few attribute look-ups per request.

    OTEL_TRACES_EXPORTER=console|otlp|none    (comma-separated; default none)
    OTEL_METRICS_EXPORTER=console|otlp|none   (default none)
    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER...
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Meter, MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

current_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "xinqiao_trace_id", default=None
)
"""The request's trace id, for log lines (set by ``TraceMiddleware``, traced or not)."""

TRACE_HEADER = "x-trace-id"
request_log = logging.getLogger("xinqiao.request")
_PROPAGATOR = TraceContextTextMapPropagator()
AttributeValue = str | int | float | bool


@dataclass
class Telemetry:
    """The tracer, the meter and the instruments one application uses."""

    tracer: Tracer = field(default_factory=lambda: NoOpTracerProvider().get_tracer("xinqiao"))
    meter: Meter = field(default_factory=lambda: NoOpMeterProvider().get_meter("xinqiao"))
    tracing: bool = False
    shutdowns: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = self.meter
        self.request_duration = m.create_histogram(
            "xinqiao.graphql.duration", unit="s", description="GraphQL operations, by name"
        )
        self.denials = m.create_counter(
            "xinqiao.authz.denials", description="Refused operations and records, by role, reason"
        )
        self.audit_write = m.create_histogram(
            "xinqiao.audit.write.duration", unit="s", description="Access-log writes (commit)"
        )
        self.escalations = m.create_counter(
            "xinqiao.alerts.escalated", description="Alerts escalated for a missed deadline"
        )
        self.token_rejections = m.create_counter(
            "xinqiao.auth.token_rejections", description="Bearer tokens refused, by reason"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Telemetry:
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return cls()
        resource = Resource.create(_service_name(env))
        span_exporters = [_span_exporter(n) for n in _names(env.get("OTEL_TRACES_EXPORTER"))]
        readers = [_metric_reader(n) for n in _names(env.get("OTEL_METRICS_EXPORTER"))]
        return cls.with_exporters(span_exporters, readers, resource)

    @classmethod
    def with_exporters(
        cls,
        span_exporters: list[SpanExporter],
        metric_readers: list[Any],
        resource: Resource | None = None,
        *,
        batch: bool = True,
    ) -> Telemetry:
        """Real providers for these exporters (tests pass in-memory ones, unbatched so no span
        is dropped or late)."""
        resource = resource or Resource.create({"service.name": "xinqiao"})
        shutdowns: list[Any] = []
        tracer: Tracer = NoOpTracerProvider().get_tracer("xinqiao")
        if span_exporters:
            provider = TracerProvider(resource=resource)
            for exporter in span_exporters:
                provider.add_span_processor(
                    BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
                )
            tracer = provider.get_tracer("xinqiao")
            shutdowns.append(provider)
        meter_provider: MeterProvider = NoOpMeterProvider()
        if metric_readers:
            from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider

            meter_provider = SdkMeterProvider(metric_readers=metric_readers, resource=resource)
            shutdowns.append(meter_provider)
        return cls(
            tracer=tracer,
            meter=meter_provider.get_meter("xinqiao"),
            tracing=bool(span_exporters),
            shutdowns=shutdowns,
        )

    def shutdown(self) -> None:
        for provider in self.shutdowns:
            provider.shutdown()

    # -- spans ---------------------------------------------------------------------------------

    @contextmanager
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> Iterator[MutableMapping[str, AttributeValue]]:
        """A child span; attributes put in the yielded dict are set when it ends. Without
        tracing, nothing is started (``authz.probe.Probe``)."""
        found: dict[str, AttributeValue] = dict(attributes or {})
        if not self.tracing:
            yield found
            return
        # Exceptions are not recorded as span events (their messages can quote values); the
        # span gets the error's type only.
        with self.tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield found
            except BaseException as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(trace.StatusCode.ERROR)
                raise
            finally:
                span.set_attributes(found)

    def instrument(self, engine: AsyncEngine) -> None:
        """A span per database statement: the operation and the table it starts from, never the
        parameters (nor the text, which can be long and says nothing an operator needs)."""
        if not self.tracing:
            return
        tracer = self.tracer
        system = engine.dialect.name

        def before(
            conn: Connection,
            cursor: DBAPICursor,
            statement: str,
            params: Any,
            ctx: ExecutionContext | None,
            many: bool,
        ) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
            span = tracer.start_span(
                f"db {verb}",
                kind=SpanKind.CLIENT,
                attributes={"db.system.name": system, "db.operation.name": verb},
            )
            conn.info.setdefault("xq_spans", []).append(span)

        def after(
            conn: Connection,
            cursor: DBAPICursor,
            statement: str,
            params: Any,
            ctx: ExecutionContext | None,
            many: bool,
        ) -> None:
            spans = conn.info.get("xq_spans")
            if spans:
                span = spans.pop()
                rowcount = getattr(cursor, "rowcount", -1)
                if isinstance(rowcount, int) and rowcount >= 0:
                    span.set_attribute("db.response.returned_rows", rowcount)
                span.end()

        def failed(context: Any) -> None:
            spans = context.connection.info.get("xq_spans") if context.connection else None
            if spans:
                span = spans.pop()
                span.set_attribute("error.type", type(context.original_exception).__name__)
                span.set_status(trace.StatusCode.ERROR)
                span.end()

        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)
        event.listen(engine.sync_engine, "handle_error", failed)


def _service_name(env: Mapping[str, str]) -> dict[str, str]:
    """``service.name`` as the environment gives it, else ``xinqiao``. An explicit attribute
    overrides ``OTEL_RESOURCE_ATTRIBUTES`` (which the SDK reads from the process environment),
    so none is set when that variable already names the service."""
    if env.get("OTEL_SERVICE_NAME"):
        return {"service.name": env["OTEL_SERVICE_NAME"]}
    if "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        return {}
    return {"service.name": "xinqiao"}


def _names(value: str | None) -> list[str]:
    names = [n.strip().lower() for n in (value or "").split(",")]
    return [n for n in names if n not in ("", "none")]


def _span_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise SystemExit(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (console, otlp or none)")


def _metric_reader(name: str) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    raise SystemExit(f"OTEL_METRICS_EXPORTER: unknown exporter {name!r} (console, otlp or none)")


class TraceMiddleware:
    """A server span per HTTP request (continuing the caller's ``traceparent``), and the trace
    id for everything the request does: the access events, the logs, the error responses and
    the ``X-Trace-Id`` response header. Untraced, the id is the caller's or a fresh one, so an
    access event and a support ticket can always be matched."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.telemetry.tracing:
            trace_id = trace_id_of(headers.get("traceparent")) or uuid.uuid4().hex
            await self._run(scope, receive, send, trace_id, None)
            return
        parent = _PROPAGATOR.extract(headers)
        method = _method(scope)
        route = route_of(scope)
        with self.telemetry.tracer.start_as_current_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
            record_exception=False,
            set_status_on_exception=False,  # its description would be the exception's message
        ) as span:
            trace_id = trace.format_trace_id(span.get_span_context().trace_id)
            await self._run(scope, receive, send, trace_id, span)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, trace_id: str, span: Any
    ) -> None:
        scope.setdefault("state", {})["trace_id"] = trace_id
        token = current_trace_id.set(trace_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (TRACE_HEADER.encode(), trace_id.encode()),
                ]
                if span is not None:
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(trace.StatusCode.ERROR)
            await send(message)

        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_logged)
        except ClientDisconnect:
            # The caller left before its request body arrived: nothing to answer, not a server
            # error (a load generator stopping mid-request logged one stack trace per request).
            status = 499
        except Exception as exc:
            # Answered here rather than by Starlette's error middleware (outside this one), so
            # the 500 carries the ids and the log names the exception's type, not its message.
            request_log.error("unhandled %s", type(exc).__name__, exc_info=exc)
            if span is not None:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(trace.StatusCode.ERROR)
            if scope["type"] == "websocket":
                raise  # the server closes the socket with 1011
            if not status:
                await _internal_error(scope, receive, send_logged, trace_id)
            status = status or 500
        finally:
            if scope["type"] == "http":
                route = route_of(scope)
                request_log.log(
                    logging.DEBUG if route in ("/healthz", "/readyz") else logging.INFO,
                    "request",
                    extra={
                        "method": _method(scope),
                        "path": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            current_trace_id.reset(token)


ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/oauth/token"})
"""The service's paths. Anything else is named "other" in spans and logs: a client can put any
text in a path it requests (an ID number, a name), and each distinct path would be a new span
name."""
_METHODS = frozenset({"GET", "POST", "OPTIONS", "HEAD", "PUT", "PATCH", "DELETE"})


def route_of(scope: Scope) -> str:
    path = scope.get("path", "")
    return path if path in ROUTES else "other"


def _method(scope: Scope) -> str:
    if scope["type"] == "websocket":
        return "WS"
    method = str(scope.get("method", "GET"))
    return method if method in _METHODS else "OTHER"


async def _internal_error(scope: Scope, receive: Receive, send: Send, trace_id: str) -> None:
    from starlette.responses import JSONResponse

    body = {
        "errors": [
            {
                "message": "服务器内部错误 (internal error)",
                "extensions": {"code": "INTERNAL_ERROR", "traceId": trace_id},
            }
        ]
    }
    await JSONResponse(body, status_code=500)(scope, receive, send)


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(traceparent: str | None) -> str | None:
    """The W3C trace id of the caller's ``traceparent`` header, if well formed."""
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None
