"""The hash chain: a canonical encoding of each event and the hash that links it to the last.

``hash = H(canonical(event))`` where the canonical form is UTF-8 JSON with sorted keys and no
spaces, over every column except ``id`` and ``hash`` itself — so it includes ``seq``,
``prev_hash`` and ``hash_alg``. Changing, deleting, inserting or reordering any event breaks the
link at that event. The algorithm is named in every record, so a national-cryptography deployment
(密评) can chain with SM3 instead of SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import RowMapping

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq",
    "occurred_at",
    "request_id",
    "trace_id",
    "operation",
    "operation_hash",
    "actor_staff_id",
    "actor_username",
    "actor_unit_id",
    "actor_roles",
    "token_id",
    "purpose",
    "kind",
    "outcome",
    "entity",
    "entity_id",
    "person_id",
    "fields",
    "redacted",
    "field_classes",
    "relations",
    "changes",
    "break_glass",
    "reason",
    "client_address",
    "user_agent",
    "hash_alg",
    "prev_hash",
)


Event = Mapping[str, Any] | RowMapping
"""An access event's columns by name: a dict being written, or a row read back."""


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "sm3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    raise ValueError(f"unknown hash algorithm {algorithm!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(event: Event) -> bytes:
    body = {name: _plain(event.get(name)) for name in CHAINED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: Event) -> str:
    return digest(str(event["hash_alg"]), canonical(event))


def link(rows: list[dict[str, Any]], *, first_seq: int, prev_hash: str, algorithm: str) -> str:
    """Give ``rows`` their seq, prev_hash, hash_alg and hash, in order; returns the new head."""
    for offset, row in enumerate(rows):
        row["seq"] = first_seq + offset
        row["prev_hash"] = prev_hash
        row["hash_alg"] = algorithm
        row["hash"] = prev_hash = event_hash(row)
    return prev_hash
