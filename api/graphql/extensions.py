"""Schema extensions: the access-log commit (fail closed) and error masking.

Both run once per operation, never per field.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ExecutionResult, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.relay.types import InvalidGlobalIDError

from api.graphql.errors import is_safe
from api.graphql.guard import operation_fingerprint
from api.live import LiveConnection
from api.telemetry import current_trace_id
from domain.errors import DomainError, ErrorCode

log = logging.getLogger("xinqiao.api")
_INPUT_ECHO = re.compile(r"(Variable '\$\w+') got invalid value .*?;", re.S)


class Observe(SchemaExtension):
    """The operation's span and duration metric: its name, type and document hash (never its
    variables), its errors' codes, and what the gate did (decisions, rows, keys, fields opened).
    One span per operation; the gate's row loads and key batches are its children."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        telemetry = getattr(context, "telemetry", None)
        if telemetry is None or isinstance(context, LiveConnection):
            yield
            return
        started = time.perf_counter()
        name, kind = "anonymous", "unknown"
        errors: list[GraphQLError] = []
        with telemetry.span("graphql.operation") as span:
            try:
                yield
            finally:
                ec = self.execution_context
                name = operation_label(ec)
                try:
                    kind = ec.operation_type.value
                except Exception:  # not parsed (a refused or malformed document)
                    kind = "unknown"
                errors = getattr(ec.result, "errors", None) or []
                codes = sorted({str((e.extensions or {}).get("code", "ERROR")) for e in errors})
                span["graphql.operation.name"] = name
                span["graphql.operation.type"] = kind
                if telemetry.tracing and context.access_log.operation_hash:
                    span["graphql.document.hash"] = context.access_log.operation_hash
                if codes:
                    span["graphql.error.codes"] = ",".join(codes)[:200]
                stats = context._gate.stats
                span["authz.decisions"] = stats.decisions
                span["authz.rows_visible"] = stats.rows
                span["authz.rows_withheld"] = stats.rows_withheld
                span["crypto.keys_unwrapped"] = stats.keys_unwrapped
                span["crypto.fields_opened"] = stats.fields_opened
                telemetry.request_duration.record(
                    time.perf_counter() - started,
                    {
                        "graphql.operation.name": name,
                        "graphql.operation.type": kind,
                        "outcome": "error" if errors else "ok",
                    },
                )


class AccessLogCommit(SchemaExtension):
    """Write the request's access events before the result leaves the server.

    If the log cannot be written, the result is replaced by an error with no data: nothing is
    disclosed that was not recorded.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, LiveConnection):
            yield  # a subscription: each delivery is logged on its own (on_stream_result)
            return
        document = self.execution_context.query
        if document:
            context.access_log.operation_hash = operation_fingerprint(document)
        try:
            yield
            result = self.execution_context.result
            await _log_or_withhold(context, result)
        finally:
            await context.close()

    def on_execute(self) -> Iterator[None]:
        """Name the operation once the document is parsed and before it runs: a mutation
        writes its events during execution."""
        context = self.execution_context.context
        if not isinstance(context, LiveConnection):
            context.access_log.operation = operation_name(self.execution_context)
        yield

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        """One delivery of a subscription: its log is written before the message is sent."""
        live = self.execution_context.context
        delivery = LiveConnection.current() if isinstance(live, LiveConnection) else None
        if delivery is not None:
            try:
                await _log_or_withhold(delivery, result)
            finally:
                await delivery.close()
                LiveConnection.end()
        yield


async def _log_or_withhold(context: Any, result: Any) -> None:
    """Commit the access log; if it cannot be written, the result leaves with no data."""
    try:
        await context.finish()
    except Exception:
        log.exception("access log write failed; result withheld")
        await context.abort()
        if hasattr(result, "errors"):  # graphql-core's result, or strawberry's for a stream
            result.data = None
            result.errors = [
                GraphQLError(
                    "访问日志暂不可用，请求未返回数据 (access log unavailable)",
                    extensions={"code": "AUDIT_UNAVAILABLE", **error_ids(context)},
                )
            ]


class SafeErrors(SchemaExtension):
    """Show typed errors with their code; replace anything unexpected with a generic message and
    the request id, so support can find the log line without the client seeing internals."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if not isinstance(result, ExecutionResult) or not result.errors:
            return
        context = self.execution_context.context
        ids = error_ids(context)
        result.errors = [self._clean(e, ids) for e in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Subscription messages are cleaned like responses."""
        if getattr(result, "errors", None):  # strawberry's result type, not graphql-core's
            ids = error_ids(self.execution_context.context)
            result.errors = [self._clean(e, ids) for e in result.errors]
        yield

    @staticmethod
    def _clean(error: GraphQLError, ids: dict[str, str]) -> GraphQLError:
        original = error.original_error
        extensions: dict[str, Any] = dict(error.extensions or {})
        extensions.update(ids)
        if isinstance(original, InvalidGlobalIDError):
            extensions["code"] = ErrorCode.INVALID_ID.value
            return GraphQLError("无效的ID", error.nodes, path=error.path, extensions=extensions)
        if isinstance(original, DomainError):
            extensions["code"] = original.code.value
            if original.field:
                extensions["field"] = list(original.field)
            return GraphQLError(
                original.message, error.nodes, path=error.path, extensions=extensions
            )
        if is_safe(error) or error.path is None:
            # Validation and input coercion: the caller's mistake. Coercion messages quote the
            # offending input; say which variable, not what it held.
            extensions.setdefault("code", "BAD_REQUEST" if error.path is None else "ERROR")
            message = _INPUT_ECHO.sub(r"\1 has an invalid value;", error.message)
            return GraphQLError(message, error.nodes, path=error.path, extensions=extensions)
        extensions["code"] = "INTERNAL_ERROR"
        return GraphQLError(
            "服务器内部错误 (internal error)", error.nodes, path=error.path, extensions=extensions
        )


def error_ids(context: Any) -> dict[str, str]:
    """The request and trace ids an error carries, so support finds its log lines and spans."""
    if isinstance(context, LiveConnection):  # a subscription: the delivery being sent, if any
        context = LiveConnection.current()
    ids = {"requestId": getattr(context, "request_id", None)}
    log = getattr(context, "access_log", None)
    ids["traceId"] = getattr(log, "trace_id", None) or current_trace_id.get()
    return {k: v for k, v in ids.items() if v}


def operation_name(ec: Any) -> str | None:
    """The name of the operation that ran, as written in its document; not the request's
    ``operationName``, which a client may set to any text (it is echoed into the access log,
    spans and metric labels)."""
    name = getattr(ec, "operation_name", None)
    document = getattr(ec, "graphql_document", None)
    if not name or document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name is not None:
            if definition.name.value == name:
                return name
    return None


_DIGIT = re.compile(r"\d")
MAX_LABELS = 200
"""Distinct operation names one process reports as labels; later ones are "other". In
production staff and partners run registered documents only, so the names are the registry's;
where staff may run ad-hoc documents, this keeps a client from growing the metric without
bound."""
_labels: set[str] = set()


def operation_label(ec: Any) -> str:
    """The operation's name as a span attribute and metric label. GraphQL names are ASCII, but
    one could still spell an ID or phone number (``query P110105...``), so a name with six or
    more digits is not used."""
    name = operation_name(ec)
    if name is None:
        return "anonymous"
    if len(_DIGIT.findall(name)) >= 6:
        return "redacted"
    name = name[:64]
    if name not in _labels:
        if len(_labels) >= MAX_LABELS:
            return "other"
        _labels.add(name)
    return name
