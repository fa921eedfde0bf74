"""Which fields of an object did the query ask for?

The gate reveals (and the access log records) only requested fields, so a query for masked names
does not count as a disclosure of phone numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

CONNECTION_PATH = ("edges", "node")


def _flatten(selections: Iterable[Selection]) -> list[SelectedField]:
    out: list[SelectedField] = []
    for s in selections:
        if isinstance(s, SelectedField):
            out.append(s)
        elif isinstance(s, FragmentSpread | InlineFragment):
            out.extend(_flatten(s.selections))
    return out


def requested(info: Info, path: tuple[str, ...] = ()) -> set[str]:
    """GraphQL names selected on the current field's object, descending ``path`` first
    (e.g. ``("edges", "node")`` for a connection, ``("person",)`` for a payload)."""
    level = _flatten(info.selected_fields)
    level = _flatten(sel for f in level for sel in f.selections)
    for step in path:
        level = _flatten(sel for f in level if f.name == step for sel in f.selections)
    return {f.name for f in level}
