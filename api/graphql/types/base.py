"""Building GraphQL objects from gated rows.

An object is built once per row from ``gate.reveal``: readable fields get their values, withheld
ones stay null and are named in ``redactedFields``. Leaf fields are then plain attributes (no
resolver, no permission class), which is what keeps authorization off the per-leaf hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import strawberry
from strawberry.types import Info

from api.graphql.selection import requested
from authz.gate import Order, Visible
from domain.classification import field_classes

T = TypeVar("T")

REDACTED_DOC = (
    "Requested fields withheld from you by the privacy policy. A field listed here is null "
    "because you may not see it, not because it is empty."
)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def ctx(info: Info) -> Any:
    return info.context


class Gated:
    """Mixin for object types backed by a protected model.

    Scalar fields named like a classified model attribute are filled from ``gate.reveal``.
    ``links`` maps relationship fields to the classified foreign key that governs them
    (``residence_unit`` ← ``residence_unit_id``): a withheld key makes the link null and redacted.
    """

    model: ClassVar[type]
    links: ClassVar[dict[str, str]] = {}

    @classmethod
    def build(cls, visible: Visible[Any], info: Info, path: tuple[str, ...] = ()) -> Any:
        return cls.from_names(visible, info, requested(info, path))

    @classmethod
    def from_names(
        cls, visible: Visible[Any], info: Info, names: set[str], also: tuple[str, ...] = ()
    ) -> Any:
        """``also``: model attributes disclosed another way (a cursor carries the order column's
        value), revealed so the decision and the access log cover them too."""
        graph_to_attr = cls._graph_to_attr()
        wanted = [graph_to_attr[n] for n in names if n in graph_to_attr]
        wanted += [a for a in also if a not in wanted]
        revealed = ctx(info).gate.reveal(visible, wanted)
        attr_to_graph = {a: g for g, a in graph_to_attr.items() if g in names}
        obj = cls(  # type: ignore[call-arg]
            id=visible.row.id,
            redacted_fields=sorted(attr_to_graph[a] for a in revealed.redacted),
            **{f: revealed.values.get(a) for f, a in cls._scalar_sources().items()},
        )
        obj._visible = visible
        obj._links = {f: revealed.values.get(a) for f, a in cls.links.items()}
        return obj

    def link(self, name: str) -> Any:
        """The revealed foreign key behind a relationship field (None if withheld or empty)."""
        return self._links.get(name)  # type: ignore[attr-defined]

    @classmethod
    def _scalar_sources(cls) -> dict[str, str]:
        """Python field name → model attribute, for every classified scalar field of this type."""
        cache = cls.__dict__.get("_scalar_cache")
        if cache is None:
            classified = field_classes(cls.model)
            definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
            cache = {
                f.python_name: f.python_name
                for f in definition.fields
                if f.python_name in classified and f.python_name not in cls.links
            }
            cls._scalar_cache = cache  # type: ignore[attr-defined]
        return cache

    @classmethod
    def _graph_to_attr(cls) -> dict[str, str]:
        cache = cls.__dict__.get("_graph_cache")
        if cache is None:
            cache = {camel(f): a for f, a in cls._scalar_sources().items()}
            cache.update({camel(f): a for f, a in cls.links.items()})
            cls._graph_cache = cache  # type: ignore[attr-defined]
        return cache


async def load_one(info: Info, type_cls: Any, id_: int | None, path: tuple[str, ...] = ()) -> Any:
    """A related object through the per-request loader; None if missing or not visible."""
    if id_ is None:
        return None
    visible = await ctx(info).loaders.by_id(type_cls.model).load(id_)
    return None if visible is None else type_cls.build(visible, info, path)


async def load_children(
    info: Info, type_cls: Any, parent_key: Any, parent_id: int, order: Order, first: int
) -> list[Any]:
    """Up to ``first`` visible children, batched across all parents on the page."""
    limit = max(1, min(first, ctx(info).settings.max_page_size))
    loader = ctx(info).loaders.children(type_cls.model, parent_key, order=order, limit=limit)
    names = requested(info)
    return [type_cls.from_names(v, info, names) for v in await loader.load(parent_id)]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass
class _Counter:
    count: Callable[[], Awaitable[int]]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _counter: strawberry.Private[_Counter]

    @strawberry.field(description="Number of rows you may see that match the filters.")
    async def total_count(self) -> int:
        return await self._counter.count()
