"""Domain errors: a stable English code for programs and a Chinese message for people.

They never carry personal data: the message names the rule that was broken, not the value that broke
it, because error texts end up in logs and on screens that are not access-logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    INVALID_ID_NUMBER = "INVALID_ID_NUMBER"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_ID = "INVALID_ID"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    DUPLICATE = "DUPLICATE"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"  # noqa: S105 - an error code
    WEAK_PASSWORD = "WEAK_PASSWORD"  # noqa: S105 - an error code
    INVALID_SCOPE = "INVALID_SCOPE"


@dataclass(frozen=True)
class DomainError(Exception):
    """A rule of the domain was broken; safe to show to the caller as is."""

    code: ErrorCode
    message: str
    """Chinese, for people."""
    field: tuple[str, ...] = ()
    """Path of the input field at fault, in API (camelCase) names, if any."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def at(self, *prefix: str) -> DomainError:
        """The same error, located under an input object."""
        return DomainError(self.code, self.message, (*prefix, *self.field))


class NotFound(DomainError):
    """Missing, or outside the viewer's scope: deliberately the same thing."""

    def __init__(self, field: tuple[str, ...] = ()) -> None:
        super().__init__(ErrorCode.NOT_FOUND, "记录不存在或无权访问", field)


class ValidationErrors(Exception):
    """Several input errors at once, so a form can show them all."""

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors
