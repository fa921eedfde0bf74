"""The field path: which requested fields of a visible row leave the server, and the record of it.

Only requested fields are computed (sealed ones opened), each field class is decided once per
(entity, relations, conditions) per request, and the disclosure names exactly what left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from authz.entities import Entity
from authz.gate.decisions import Decisions
from authz.gate.sealer import Sealer
from authz.gate.types import Revealed, Visible
from authz.overlays import visible_categories
from domain.classification import field_classes
from domain.disclosure import AccessKind, Disclosure, DisclosureSink
from domain.sealing import encrypted_columns

NON_PERSONAL = frozenset({Entity.UNIT})
"""Entities whose reads are not disclosures of personal data (still gated, not logged per row)."""


def reveal(
    visible: Visible[Any],
    fields: Iterable[str],
    *,
    decisions: Decisions,
    sealer: Sealer,
    sink: DisclosureSink,
) -> Revealed:
    """Values of the requested fields that the subject may read; the rest are redacted."""
    row = visible.row
    classes = field_classes(type(row))
    readable = decisions.readable(visible.entity, visible.relations, visible.conditions)
    values: dict[str, Any] = {}
    redacted: list[str] = []
    disclosed: set[str] = set()
    sealed = encrypted_columns(type(row))
    derived = getattr(type(row), "derived_from", {})
    for name in fields:
        field_class = classes.get(name)
        if field_class is None:
            continue
        if field_class not in readable:
            redacted.append(name)
            continue
        if name in sealed:
            value = sealer.open(row, name)
            if value is not None and name in row.opened_as:
                value = row.opened_as[name](value)
        elif name in derived:
            source, derive = derived[name]
            value = derive(sealer.open(row, source))
        else:
            value = getattr(row, name)
        if name == "sensitive_categories":
            roles = decisions.subject.roles
            value, withheld = visible_categories(roles, visible.conditions, value)
            if withheld:
                redacted.append(name)
        values[name] = value
        disclosed.add(field_class.value)
    if visible.entity not in NON_PERSONAL:
        sink.record(
            Disclosure(
                AccessKind.READ,
                visible.entity.value,
                row.id,
                fields=tuple(sorted(values)),
                redacted=tuple(redacted),
                field_classes=tuple(sorted(disclosed)),
                relations=tuple(sorted(visible.relations)),
                person_id=visible.person_id,
            )
        )
    return Revealed(values, tuple(redacted))
