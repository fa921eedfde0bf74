"""What the privacy gate tells the access log: the shared vocabulary of ``authz`` and ``audit``.

It lives in the domain so that the gate (which decides) and the log (which records) stay
independent of each other; the API wires one to the other. A disclosure names fields, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class AccessKind(StrEnum):
    READ = "read"
    WRITE = "write"
    DENIED = "denied"
    SEARCH = "search"
    EXPORT = "export"


@dataclass(frozen=True, slots=True)
class Actor:
    staff_id: int | None
    username: str
    unit_id: int | None
    roles: tuple[str, ...]
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Disclosure:
    kind: AccessKind
    entity: str
    entity_id: int | None
    fields: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()
    field_classes: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    reason: str | None = None
    """For denials and writes: the rule or action concerned (never personal data)."""
    person_id: int | None = None
    """The person the record is about, when the gate knows it (for per-person history)."""
    changes: dict[str, tuple[object, object]] | None = None
    """For writes: field → (before, after). The log stores keyed hashes, never the values."""
    extra: dict[str, str] = field(default_factory=dict)


class DisclosureSink(Protocol):
    """Receives every disclosure the gate makes; the access log implements it."""

    def record(self, disclosure: Disclosure) -> None: ...
