"""Opaque global IDs (Relay): base64 of ``Type:id``. Malformed input is a typed error."""

from __future__ import annotations

from strawberry.relay import GlobalID, GlobalIDValueError

from domain.errors import DomainError, ErrorCode


def decode(raw: str | GlobalID, expected: str | None = None, field: str = "id") -> tuple[str, int]:
    """(type name, database id). With ``expected``, a different type is an error."""
    bad = DomainError(ErrorCode.INVALID_ID, "无效的ID", (field,))
    try:
        gid = raw if isinstance(raw, GlobalID) else GlobalID.from_id(raw)
        number = int(gid.node_id)
    except (GlobalIDValueError, ValueError, TypeError):
        raise bad from None
    if number <= 0 or number > 2**63 - 1 or (expected and gid.type_name != expected):
        raise bad
    return gid.type_name, number


def encode(type_name: str, number: int) -> str:
    return str(GlobalID(type_name, str(number)))
