"""Errors as the API shows them.

Mutations return typed ``UserError``s in their payload (a code for programs, a Chinese message for
people, the input path at fault). Anything unexpected is masked to a generic message carrying the
request id, so nothing internal — stack traces, SQL, personal data — reaches the client.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.exceptions import StrawberryGraphQLError

from domain.errors import DomainError, ErrorCode

ErrorCodeEnum = strawberry.enum(ErrorCode, name="ErrorCode", description="Stable error codes.")


@strawberry.type(description="A problem with a mutation's input or target, safe to show.")
class UserError:
    code: ErrorCode
    message: str = strawberry.field(description="For people (Chinese).")
    field: list[str] | None = strawberry.field(
        description="Path of the input field at fault, if any."
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=list(error.field) or None)


class ApiError(StrawberryGraphQLError):
    """A top-level GraphQL error whose text is safe to show; never masked."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(
            error.message,
            extensions={
                "code": error.code.value,
                **({"field": list(error.field)} if error.field else {}),
            },
        )


def is_safe(error: GraphQLError) -> bool:
    """Validation and syntax errors and our own typed errors are shown; anything else is masked."""
    original = error.original_error
    if original is None:
        return True
    return isinstance(original, StrawberryGraphQLError | DomainError)
