"""Keyset cursors: opaque to clients, bound to the order they were made for."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import DateTime

from authz.gate.types import Order
from domain.errors import DomainError, ErrorCode


def encode_cursor(order: Order, value: Any, row_id: int) -> str:
    if isinstance(value, datetime | date):
        value = value.isoformat()
    elif isinstance(value, Enum):
        value = value.value
    raw = json.dumps([order.key, value, row_id], ensure_ascii=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[Any, int]:
    """The (order value, row id) a cursor carries; a cursor made for another order, or not made
    by us, is refused with an error the client can act on (start again from the first page)."""
    bad = DomainError(ErrorCode.INVALID, "分页游标无效，请从第一页重新查询", ("after",))
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise bad from None
    if key != order.key or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise bad
    column_type = order.column.property.columns[0].type
    if (
        isinstance(column_type, DateTime)
        or getattr(column_type, "impl", None).__class__ is DateTime
    ):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
        if value.tzinfo is None:
            raise bad
    elif not isinstance(value, str | int) or isinstance(value, bool):
        raise bad
    return value, row_id
