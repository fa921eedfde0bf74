"""Structured application logs: one JSON object per line, with the request's trace id.

Log calls in this codebase name events and codes, never personal values (a name, an ID number,
a note): ``pytest_sessionfinish`` in ``tests/conftest.py`` scans every line the test suite
logged, and every span, for the demo persons' names, ID numbers, phones and sealed texts. The
server's own per-request line carries method, path (never the query string, which can hold
GraphQL variables), status, duration and trace id; uvicorn's access log is off for the same
reason.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from api.telemetry import current_trace_id


class TraceIds(logging.Filter):
    """Stamp every record with the trace id of the request it was logged in (if any)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", None):
            record.trace_id = current_trace_id.get()
        return True


class TypesOnly(JsonFormatter):
    """Exceptions as their types and frames, never their messages: a database error quotes the
    values it refused, a validation error the input (asyncpg, for one, puts a bad argument's
    value in the message). The frames say where; the trace id leads to the request."""

    def formatException(  # noqa: N802 - logging's name
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        _, exc, _ = ei
        return "" if exc is None else without_messages(exc)


def without_messages(exc: BaseException) -> str:
    """The exception chain, outermost last as Python prints it, with each message left out."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
    return "\n\nthe above led to:\n\n".join(reversed(parts))


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        TypesOnly(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(TraceIds())
    return handler


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """JSON to stderr for the whole process (uvicorn's loggers included)."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler(stream)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
