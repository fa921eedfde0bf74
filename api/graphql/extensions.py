"""Schema extensions: the access-log commit (fail closed) and error masking.

Both run once per operation, never per field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.relay.types import InvalidGlobalIDError

from api.graphql.errors import is_safe
from api.graphql.guard import operation_fingerprint
from api.live import LiveConnection
from domain.errors import DomainError, ErrorCode

log = logging.getLogger("xinqiao.api")
_INPUT_ECHO = re.compile(r"(Variable '\$\w+') got invalid value .*?;", re.S)


class AccessLogCommit(SchemaExtension):
    """Write the request's access events before the result leaves the server.

    If the log cannot be written, the result is replaced by an error with no data: nothing is
    disclosed that was not recorded.
    """

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        if isinstance(context, LiveConnection):
            yield  # a subscription: each delivery is logged on its own (on_stream_result)
            return
        context.access_log.operation = self.execution_context.operation_name
        document = self.execution_context.query
        if document:
            context.access_log.operation_hash = operation_fingerprint(document)
        try:
            yield
            result = self.execution_context.result
            await _log_or_withhold(context, result)
        finally:
            await context.close()

    async def on_stream_result(  # type: ignore[override]
        self, result: Any
    ) -> AsyncIterator[None]:
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
                    extensions={"code": "AUDIT_UNAVAILABLE"},
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
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._clean(e, request_id) for e in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:  # type: ignore[override]
        """Subscription messages are cleaned like responses."""
        if getattr(result, "errors", None):  # strawberry's result type, not graphql-core's
            request_id = getattr(self.execution_context.context, "request_id", None)
            result.errors = [self._clean(e, request_id) for e in result.errors]
        yield

    @staticmethod
    def _clean(error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        extensions: dict[str, Any] = dict(error.extensions or {})
        if request_id:
            extensions["requestId"] = request_id
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
