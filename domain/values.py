"""Value objects that validate on construction: resident ID numbers, mobile phones, bounded text.

A value that exists is valid, so code further in never re-checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from domain.errors import DomainError, ErrorCode

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^[1-9][0-9]{16}[0-9X]$")  # ASCII only: no full-width digits
_PHONE_SHAPE = re.compile(r"^1[3-9][0-9]{9}$")


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643-1999)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


@dataclass(frozen=True, slots=True)
class ResidentId:
    """An 18-character resident identity number (居民身份证号码), normalised to upper case."""

    value: str

    @classmethod
    def parse(cls, raw: str, *, today: date | None = None) -> ResidentId:
        text = raw.strip().upper()
        if not _ID_SHAPE.match(text):
            raise DomainError(ErrorCode.INVALID_ID_NUMBER, "身份证号码应为18位，前17位为数字")
        try:
            born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
        except ValueError:
            raise DomainError(ErrorCode.INVALID_ID_NUMBER, "身份证号码中的出生日期无效") from None
        if born > (today or date.today()) or born.year < 1900:
            raise DomainError(ErrorCode.INVALID_ID_NUMBER, "身份证号码中的出生日期无效")
        if id_check_char(text[:17]) != text[17]:
            raise DomainError(ErrorCode.INVALID_ID_NUMBER, "身份证号码校验位错误")
        return cls(text)

    @property
    def birth_date(self) -> date:
        return date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))

    @property
    def is_male(self) -> bool:
        return int(self.value[16]) % 2 == 1

    def __repr__(self) -> str:  # never print the number itself
        return "ResidentId(***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class MobilePhone:
    """A mainland mobile number, 11 digits; a leading +86 or 86 is accepted and dropped."""

    value: str

    @classmethod
    def parse(cls, raw: str) -> MobilePhone:
        text = re.sub(r"[\s-]", "", raw)
        if text.startswith("+86"):
            text = text[3:]
        elif text.startswith("86") and len(text) == 13:
            text = text[2:]
        if not _PHONE_SHAPE.match(text):
            raise DomainError(ErrorCode.INVALID_PHONE, "手机号码应为以1开头的11位数字")
        return cls(text)

    def __repr__(self) -> str:
        return "MobilePhone(***)"

    __str__ = __repr__


def bounded_text(raw: str, *, limit: int, required: bool = True) -> str:
    """Strip and bound free text; oversized input is refused, never silently cut."""
    text = raw.strip()
    if required and not text:
        raise DomainError(ErrorCode.REQUIRED, "不能为空")
    if len(text) > limit:
        raise DomainError(ErrorCode.TOO_LONG, f"长度不能超过{limit}个字符")
    return text


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def could_be_under(birth_year: int | None, today: date, age: int) -> bool:
    """Whether someone born in ``birth_year`` may be younger than ``age`` at some point of
    ``today``'s year: the protective reading when only the year is known (None: unknown, so yes).
    Mirrored in SQL by ``authz.conditions.born_after``."""
    return birth_year is None or today.year - birth_year <= age


def utc_today() -> date:
    """Today as the SQL rules see it (the gate's clock is UTC): Python and SQL must agree on
    who is a minor even in the hours when local and UTC dates differ."""
    return datetime.now(UTC).date()


def age_band_of(birth_date: str | None) -> str | None:
    """``age_band`` of an opened (ISO) birth date, as of today."""
    return None if birth_date is None else age_band(date.fromisoformat(birth_date), utc_today())


def age_band(birth: date | None, today: date) -> str | None:
    """Coarse age, safe to show as basic data: under 14, 14–17, 18–34, 35–59, 60+."""
    if birth is None:
        return None
    age = age_on(birth, today)
    if age < 14:
        return "0-13"
    if age < 18:
        return "14-17"
    if age < 35:
        return "18-34"
    if age < 60:
        return "35-59"
    return "60+"


def mask_name(name: str | None) -> str | None:
    """张三 → 张*, 欧阳娜娜 → 欧***: the family name and the length only."""
    if not name:
        return None
    return name[0] + "*" * max(1, len(name) - 1)


def mask_id_number(number: str | None) -> str | None:
    """First six and last four characters; the birth date and sequence are hidden."""
    if not number or len(number) < 10:
        return None
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
