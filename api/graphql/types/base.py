"""Building GraphQL objects from gated rows.

An object is built once per row from ``gate.reveal``: readable fields get their values, withheld
ones stay null and are named in ``redactedFields``. Leaf fields are then plain attributes (no
resolver, no permission class), which is what keeps authorization off the per-leaf hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import strawberry
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from api.graphql.selection import requested
from authz.gate import Order, Visible
from domain.base import Base
from domain.classification import field_classes

if TYPE_CHECKING:  # api.context imports the loaders, which import the gate: no cycle at run time
    from api.context import RequestContext

T = TypeVar("T")
G = TypeVar("G", bound="Gated")

REDACTED_DOC = (
    "Requested fields withheld from you by the privacy policy. A field listed here is null "
    "because you may not see it, not because it is empty."
)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def ctx(info: Info) -> RequestContext:
    """The request's context (``api.context.build_context``). In a subscription it is the
    socket's ``api.live.LiveConnection``, which answers ``gate``, ``loaders``, ``access_log``
    and ``settings`` from the delivery in progress: what object types use of it."""
    context: RequestContext = info.context
    return context


class Gated:
    """Mixin for object types backed by a protected model.

    Scalar fields named like a classified model attribute are filled from ``gate.reveal``.
    ``links`` maps relationship fields to the classified foreign key that governs them
    (``residence_unit`` ← ``residence_unit_id``): a withheld key makes the link null and redacted.
    """

    model: ClassVar[type[Base]]
    links: ClassVar[dict[str, str]] = {}

    if TYPE_CHECKING:
        # Set on each object by from_names. Declared here for the type checker only: each type
        # declares ``_visible`` as a private field itself, and ``_links`` is no field at all.
        _visible: Visible[Any] | None
        _links: dict[str, Any]

    @classmethod
    def build(cls, visible: Visible[Any], info: Info, path: tuple[str, ...] = ()) -> Self:
        return cls.from_names(visible, info, requested(info, path))

    @classmethod
    def from_names(
        cls, visible: Visible[Any], info: Info, names: set[str], also: tuple[str, ...] = ()
    ) -> Self:
        """``also``: model attributes disclosed another way (a cursor carries the order column's
        value), revealed so the decision and the access log cover them too."""
        graph_to_attr = cls._graph_to_attr()
        wanted = [graph_to_attr[n] for n in names if n in graph_to_attr]
        wanted += [a for a in also if a not in wanted]
        revealed = ctx(info).gate.reveal(visible, wanted)
        attr_to_graph = {a: g for g, a in graph_to_attr.items() if g in names}
        obj = cls(  # type: ignore[call-arg]  # a mixin: the strawberry type built on it takes these
            id=visible.row.id,
            redacted_fields=sorted(attr_to_graph[a] for a in revealed.redacted),
            **{f: revealed.values.get(a) for f, a in cls._scalar_sources().items()},
        )
        obj._visible = visible
        obj._links = {f: revealed.values.get(a) for f, a in cls.links.items()}
        return obj

    def link(self, name: str) -> Any:
        """The revealed foreign key behind a relationship field (None if withheld or empty)."""
        return self._links.get(name)

    @classmethod
    def _scalar_sources(cls) -> dict[str, str]:
        """Python field name → model attribute, for every classified scalar field of this type."""
        cache = _SCALAR_SOURCES.get(cls)
        if cache is None:
            classified = field_classes(cls.model)
            definition = get_object_definition(cls, strict=True)
            cache = _SCALAR_SOURCES[cls] = {
                f.python_name: f.python_name
                for f in definition.fields
                if f.python_name in classified and f.python_name not in cls.links
            }
        return cache

    @classmethod
    def _graph_to_attr(cls) -> dict[str, str]:
        cache = _GRAPH_TO_ATTR.get(cls)
        if cache is None:
            cache = _GRAPH_TO_ATTR[cls] = {camel(f): a for f, a in cls._scalar_sources().items()}
            cache.update({camel(f): a for f, a in cls.links.items()})
        return cache


_SCALAR_SOURCES: dict[type[Gated], dict[str, str]] = {}
_GRAPH_TO_ATTR: dict[type[Gated], dict[str, str]] = {}
"""Per type, computed on its first object (the type's fields are final by then)."""


async def load_one(
    info: Info, type_cls: type[G], id_: int | None, path: tuple[str, ...] = ()
) -> G | None:
    """A related object through the per-request loader; None if missing or not visible."""
    if id_ is None:
        return None
    visible = await ctx(info).loaders.by_id(type_cls.model).load(id_)
    return None if visible is None else type_cls.build(visible, info, path)


async def load_children(
    info: Info,
    type_cls: type[G],
    parent_key: InstrumentedAttribute[int | None],
    parent_id: int,
    order: Order,
    first: int,
) -> list[G]:
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
