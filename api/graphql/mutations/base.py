"""How a mutation runs: authorize through the gate, change the domain, commit once.

Each mutation is one transaction. Domain and authorization errors come back in the payload as
``UserError``s and the database is left exactly as it was; the access log (reads so far, the
denial, or the write) is committed with the change or, on failure, at the end of the request.
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


async def run(
    info: strawberry.Info, action: Callable[[Gate], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
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


def _user_errors(failure: Exception) -> list[UserError]:
    if isinstance(failure, DomainError):
        return [UserError.of(failure)]
    if isinstance(failure, ValidationErrors):
        return [UserError.of(e) for e in failure.errors]
    return [UserError(code=ErrorCode.CONFLICT, message="与现有记录冲突", field=None)]


def collect(*checks: Callable[[], Any]) -> list[Any]:
    """Run every validation, gathering all errors so a form can show them at once."""
    values: list[Any] = []
    errors: list[DomainError] = []
    for check in checks:
        try:
            values.append(check())
        except DomainError as error:
            errors.append(error)
            values.append(None)
    if errors:
        raise ValidationErrors(errors)
    return values


async def reload(info: strawberry.Info, type_cls: Any, record_id: int | None, field: str) -> Any:
    """The changed record as the viewer may now see it, built for the payload's selection."""
    if record_id is None:
        return None
    found = await ctx(info).gate.by_ids(type_cls.model, [record_id])
    visible: Visible[Any] | None = found.get(record_id)
    return None if visible is None else type_cls.build(visible, info, (field,))
