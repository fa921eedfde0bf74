"""DataLoaders, one set per request, over the gate only.

Every nested list in the schema resolves through these, so a page of N cases costs the same number
of statements as a page of 5: one per level, never one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute
from strawberry.dataloader import DataLoader

from authz.gate import Gate, Order, Visible
from domain.base import Base


class Loaders:
    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._by_id: dict[type[Base], DataLoader[int, Visible[Any] | None]] = {}
        self._children: dict[tuple[Any, ...], DataLoader[int, list[Visible[Any]]]] = {}

    def by_id(self, model: type[Base]) -> DataLoader[int, Visible[Any] | None]:
        loader = self._by_id.get(model)
        if loader is None:

            async def load(ids: Sequence[int]) -> list[Visible[Any] | None]:
                found = await self._gate.by_ids(model, list(ids))
                return [found.get(i) for i in ids]

            loader = self._by_id[model] = DataLoader(load_fn=load)
        return loader

    def children(
        self,
        model: type[Base],
        parent_key: InstrumentedAttribute[int | None],
        *,
        order: Order,
        limit: int,
    ) -> DataLoader[int, list[Visible[Any]]]:
        key = (model, parent_key.key, order.key, limit)
        loader = self._children.get(key)
        if loader is None:

            async def load(parent_ids: Sequence[int]) -> list[list[Visible[Any]]]:
                grouped = await self._gate.children(
                    model,
                    parent_key,
                    list(parent_ids),
                    order=order,
                    limit=limit,
                )
                return [grouped.get(i, []) for i in parent_ids]

            loader = self._children[key] = DataLoader(load_fn=load)
        return loader
