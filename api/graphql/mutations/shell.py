"""The mutation shell: how every mutation runs, written once.

decode and validate (inside the action, so every problem becomes a typed error) → the use case
in ``api.services`` → flush, or roll back on failure → commit with the access log → reload the
changed record as the viewer may now see it → the mutation's own payload type. Domain and
authorization errors come back in the payload as ``UserError``s and the database is left exactly
as it was; the access log (reads so far, the denial, or the write) is committed with the change
or, on failure, at the end of the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from sqlalchemy.exc import IntegrityError

from api.graphql.errors import UserError
from api.graphql.types.base import ctx
from authz.gate import Gate, Visible
from domain.errors import DomainError, ErrorCode, ValidationErrors

T = TypeVar("T")
P = TypeVar("P")


async def run(
    info: strawberry.Info, action: Callable[[Gate], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
    """One transaction: the action's result and no errors, or None and the errors."""
    context = ctx(info)
    gate = context.gate
    mark = len(context.access_log.pending)
    try:
        result = await action(gate)
        await gate.flush()
    except (DomainError, ValidationErrors, IntegrityError) as failure:
        await context.abort()
        context.access_log.discard_writes_since(mark)
        return None, _user_errors(failure)
    except BaseException:
        await context.abort()
        context.access_log.discard_writes_since(mark)
        raise
    try:
        await context.finish()
    except BaseException:
        await context.abort()
        context.access_log.discard_writes_since(mark)
        raise
    return result, []


async def mutate(
    info: strawberry.Info,
    action: Callable[[Gate], Awaitable[int]],
    payload: Callable[..., P],
    node: Any,
    field: str,
    **extra: Any,
) -> P:
    """Run ``action`` and answer ``payload(<field>=<the record as now visible>, errors=...)``."""
    record_id, errors = await run(info, action)
    graph_name = _camel(field)
    record = await reload(info, node, record_id, graph_name)
    return payload(**{field: record, "errors": errors, **extra})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _user_errors(failure: Exception) -> list[UserError]:
    if isinstance(failure, DomainError):
        return [UserError.of(failure)]
    if isinstance(failure, ValidationErrors):
        return [UserError.of(e) for e in failure.errors]
    return [UserError(code=ErrorCode.CONFLICT, message="与现有记录冲突", field=None)]


async def reload(info: strawberry.Info, type_cls: Any, record_id: int | None, field: str) -> Any:
    """The changed record as the viewer may now see it, built for the payload's selection."""
    if record_id is None:
        return None
    found = await ctx(info).gate.by_ids(type_cls.model, [record_id])
    visible: Visible[Any] | None = found.get(record_id)
    return None if visible is None else type_cls.build(visible, info, (field,))
