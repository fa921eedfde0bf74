"""Input validators shared by the mutations: each returns the clean value or raises a
``DomainError`` at the field's GraphQL name, and ``collect`` runs several so a form can show
every problem at once."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from domain.errors import DomainError, ErrorCode, ValidationErrors
from domain.values import MobilePhone, ResidentId, bounded_text


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


def id_number(
    raw: str | None, birth: datetime.date | None
) -> tuple[str | None, datetime.date | None]:
    """A resident ID number and the birth date it carries (which must agree with a given one)."""
    if raw is None or not raw.strip():
        return None, birth
    try:
        rid = ResidentId.parse(raw)
    except DomainError as e:
        raise e.at("idNumber") from None
    if birth is not None and birth != rid.birth_date:
        raise DomainError(ErrorCode.INVALID, "出生日期与身份证号码不一致", ("birthDate",))
    return rid.value, rid.birth_date


def phone(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return MobilePhone.parse(raw).value
    except DomainError as e:
        raise e.at("phone") from None


def text(raw: str | None, limit: int, field: str, required: bool = False) -> str | None:
    """Bounded free text; empty counts as absent."""
    if raw is None:
        if required:
            raise DomainError(ErrorCode.REQUIRED, "不能为空", (field,))
        return None
    try:
        return bounded_text(raw, limit=limit, required=required) or None
    except DomainError as e:
        raise e.at(field) from None


def when_past(
    value: datetime.datetime | None, now: datetime.datetime, field: str
) -> datetime.datetime:
    """When something happened: now by default, never in the future (5 minutes of clock skew)."""
    if value is None:
        return now
    if value.tzinfo is None:
        raise DomainError(ErrorCode.INVALID, "时间须带时区", (field,))
    if value > now + datetime.timedelta(minutes=5):
        raise DomainError(ErrorCode.INVALID, "时间不能晚于现在", (field,))
    return value


def when_future(value: datetime.datetime, now: datetime.datetime, field: str) -> datetime.datetime:
    if value.tzinfo is None:
        raise DomainError(ErrorCode.INVALID, "时间须带时区", (field,))
    if value <= now:
        raise DomainError(ErrorCode.INVALID, "随访时间须在将来", (field,))
    return value
