"""Value objects of ``domain.values``: resident ID numbers, mobile phones, bounded text, ages, names.

Every resident ID number here is synthetic: built from a fixed region code and a chosen birth
date and sequence, with the check character computed by ``id_check_char``.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.errors import DomainError, ErrorCode
from domain.values import (
    MobilePhone,
    ResidentId,
    age_band,
    age_on,
    bounded_text,
    id_check_char,
    mask_name,
)

REGION = "110105"
TODAY = date(2024, 6, 1)
CHECK_CHARS = "0123456789X"


def first17(born: date | str, seq: str = "123", region: str = REGION) -> str:
    digits = born if isinstance(born, str) else born.strftime("%Y%m%d")
    return f"{region}{digits}{seq}"


def build_id(born: date | str, seq: str = "123", region: str = REGION) -> str:
    body = first17(born, seq, region)
    return body + id_check_char(body)


def seq_with_check_x(born: date) -> str:
    """A sequence number whose ID number ends in the check character X."""
    for n in range(1000):
        seq = f"{n:03d}"
        if id_check_char(first17(born, seq)) == "X":
            return seq
    raise AssertionError("no sequence gives X")  # pragma: no cover


def refused(raw: str, code: ErrorCode = ErrorCode.INVALID_ID_NUMBER, **kw: object) -> DomainError:
    parse = ResidentId.parse if code is ErrorCode.INVALID_ID_NUMBER else MobilePhone.parse
    with pytest.raises(DomainError) as info:
        parse(raw, **kw)  # type: ignore[arg-type]
    assert info.value.code is code
    return info.value


# --- id_check_char -------------------------------------------------------------------------


def test_check_char_matches_independent_mod_11_2() -> None:
    # Derived from first principles rather than the lookup table: weights are 2^(17-i) mod 11 and
    # the check value c (10 written X) is the one making the weighted sum plus c ≡ 1 (mod 11).
    for seq in ("000", "007", "123", "500", "999"):
        body = first17(date(1990, 7, 15), seq)
        total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body))
        c = (1 - total) % 11
        assert id_check_char(body) == ("X" if c == 10 else str(c)), seq


def test_check_char_satisfies_iso_7064_equation() -> None:
    # Σ a_i · 2^(18-i) ≡ 1 (mod 11) over all 18 characters, with X standing for 10.
    for seq in ("000", "001", "123", "998", "999"):
        number = build_id(date(1990, 7, 15), seq)
        values = [10 if c == "X" else int(c) for c in number]
        total = sum(v * pow(2, 17 - i) for i, v in enumerate(values))
        assert total % 11 == 1, number


def test_check_char_requires_exactly_17_digits() -> None:
    with pytest.raises(ValueError):
        id_check_char("1101052000010112")
    with pytest.raises(ValueError):
        id_check_char("110105200001011234")


# --- ResidentId.parse: accepted ------------------------------------------------------------


def test_valid_number_parses_to_itself() -> None:
    number = build_id(date(2000, 1, 1), "123")
    rid = ResidentId.parse(number, today=TODAY)
    assert rid.value == number


def test_check_character_x_is_accepted() -> None:
    born = date(1985, 3, 9)
    number = build_id(born, seq_with_check_x(born))
    assert number.endswith("X")
    assert ResidentId.parse(number, today=TODAY).value == number


def test_lowercase_x_is_normalised_to_upper_case() -> None:
    born = date(1985, 3, 9)
    number = build_id(born, seq_with_check_x(born))
    rid = ResidentId.parse(number[:-1] + "x", today=TODAY)
    assert rid.value == number
    assert rid.value.endswith("X")


@pytest.mark.parametrize(
    "padding", [(" ", " "), ("\t", "\n"), ("  ", ""), ("", "\r\n"), ("\u3000", "")]
)
def test_surrounding_whitespace_is_stripped(padding: tuple[str, str]) -> None:
    number = build_id(date(2000, 1, 1))
    rid = ResidentId.parse(padding[0] + number + padding[1], today=TODAY)
    assert rid.value == number


def test_leap_day_in_leap_year_is_accepted() -> None:
    rid = ResidentId.parse(build_id("20000229"), today=TODAY)
    assert rid.birth_date == date(2000, 2, 29)


def test_birth_on_the_reference_day_is_accepted() -> None:
    rid = ResidentId.parse(build_id(TODAY), today=TODAY)
    assert rid.birth_date == TODAY


def test_earliest_allowed_year_is_1900() -> None:
    rid = ResidentId.parse(build_id("19000101"), today=TODAY)
    assert rid.birth_date == date(1900, 1, 1)


def test_default_reference_day_is_today() -> None:
    ResidentId.parse(build_id(date.today()))
    refused(build_id(date.today() + timedelta(days=1)))


# --- ResidentId.parse: refused -------------------------------------------------------------


def test_every_wrong_check_character_is_refused() -> None:
    number = build_id(date(2000, 1, 1))
    wrong = [c for c in CHECK_CHARS if c != number[-1]]
    assert len(wrong) == 10
    for c in wrong:
        refused(number[:-1] + c, today=TODAY)


@pytest.mark.parametrize(
    "digits",
    [
        "20000230",  # 30 February
        "20000231",
        "20230229",  # 29 February in a common year
        "19000229",  # 1900 is not a leap year
        "20000431",  # 31 April
        "20001301",  # month 13
        "20000001",  # month 00
        "20000100",  # day 00
        "20000132",  # day 32
        "00000101",  # year 0
    ],
)
def test_impossible_birth_dates_are_refused(digits: str) -> None:
    # The check character is right, so only the date rule can refuse it.
    refused(build_id(digits), today=TODAY)


def test_future_birth_date_is_refused() -> None:
    refused(build_id(TODAY + timedelta(days=1)), today=TODAY)
    refused(build_id(date(2099, 12, 31)), today=TODAY)


def test_birth_year_before_1900_is_refused() -> None:
    refused(build_id("18991231"), today=TODAY)
    refused(build_id("18000101"), today=TODAY)


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 19, 20])
def test_wrong_length_is_refused(length: int) -> None:
    number = build_id(date(2000, 1, 1))
    candidate = (number * 2)[:length]
    refused(candidate, today=TODAY)


def test_17_and_19_characters_are_refused() -> None:
    number = build_id(date(2000, 1, 1))
    refused(number[:17], today=TODAY)
    refused(number + "0", today=TODAY)
    refused(number + "X", today=TODAY)


def test_old_15_digit_format_is_refused() -> None:
    refused("110105000101123", today=TODAY)


@pytest.mark.parametrize("position", range(17))
@pytest.mark.parametrize("letter", ["A", "X", "x", "O", "-", " "])
def test_non_digit_in_first_17_is_refused(position: int, letter: str) -> None:
    number = build_id(date(2000, 1, 1))
    refused(number[:position] + letter + number[position + 1 :], today=TODAY)


@pytest.mark.parametrize("last", ["A", "Y", "-", "*"])
def test_only_digit_or_x_allowed_as_check_character(last: str) -> None:
    refused(build_id(date(2000, 1, 1))[:-1] + last, today=TODAY)


def test_leading_zero_is_refused_even_with_valid_check_character() -> None:
    refused(build_id(date(2000, 1, 1), region="010105"), today=TODAY)


def test_internal_whitespace_is_not_removed() -> None:
    number = build_id(date(2000, 1, 1))
    refused(number[:6] + " " + number[6:], today=TODAY)


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_blank_is_refused(raw: str) -> None:
    refused(raw, today=TODAY)


def test_error_never_contains_the_number() -> None:
    number = build_id(date(2000, 1, 1))
    bad = number[:-1] + ("0" if number[-1] != "0" else "1")
    error = refused(bad, today=TODAY)
    for text in (str(error), repr(error), error.message):
        assert bad not in text
        assert number[:17] not in text
        assert "20000101" not in text


# --- ResidentId: derived values and privacy -----------------------------------------------


def test_birth_date_is_read_from_positions_7_to_14() -> None:
    rid = ResidentId.parse(build_id(date(1976, 11, 23)), today=TODAY)
    assert rid.birth_date == date(1976, 11, 23)


@pytest.mark.parametrize("gender_digit", range(10))
def test_gender_from_17th_digit_odd_is_male(gender_digit: int) -> None:
    rid = ResidentId.parse(build_id(date(2000, 1, 1), f"12{gender_digit}"), today=TODAY)
    assert rid.is_male is (gender_digit % 2 == 1)


def test_repr_and_str_never_show_the_number() -> None:
    born = date(1985, 3, 9)
    number = build_id(born, seq_with_check_x(born))
    rid = ResidentId.parse(number, today=TODAY)
    for text in (repr(rid), str(rid), f"{rid}", f"{rid!r}", repr([rid]), repr({"id": rid})):
        assert number not in text
        assert number[:6] not in text
        assert "19850309" not in text
        assert not any(ch.isdigit() for ch in text.replace("ResidentId", ""))
    assert repr(rid) == str(rid) == "ResidentId(***)"


def test_resident_id_is_immutable_and_compares_by_value() -> None:
    number = build_id(date(2000, 1, 1))
    rid = ResidentId.parse(number, today=TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rid.value = "x"  # type: ignore[misc]
    assert rid == ResidentId.parse(" " + number.lower() + " ", today=TODAY)
    assert hash(rid) == hash(ResidentId(number))


def test_full_width_digits_are_refused_or_normalised() -> None:
    born = date(1985, 3, 9)
    number = build_id(born, seq_with_check_x(born))  # ends in X, so the check comparison passes
    full_width = number[0] + "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in number[1:])
    try:
        rid = ResidentId.parse(full_width, today=TODAY)
    except DomainError as e:
        assert e.code is ErrorCode.INVALID_ID_NUMBER
    else:
        assert rid.value == number  # stored ASCII, so lookups and duplicates still match


# --- ResidentId: properties ----------------------------------------------------------------

births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}")
regions = st.integers(min_value=100000, max_value=999999).map(str)


@given(born=births, seq=sequences, region=regions)
def test_built_numbers_parse_and_round_trip(born: date, seq: str, region: str) -> None:
    number = build_id(born, seq, region)
    rid = ResidentId.parse(number, today=TODAY)
    assert rid.value == number
    assert rid.birth_date == born
    assert rid.is_male is (int(seq[-1]) % 2 == 1)
    assert ResidentId.parse(number.lower(), today=TODAY) == rid


@given(
    born=births,
    seq=sequences,
    position=st.integers(min_value=0, max_value=16),
    shift=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_substitution_is_refused(
    born: date, seq: str, position: int, shift: int
) -> None:
    number = build_id(born, seq)
    replacement = str((int(number[position]) + shift) % 10)
    mutated = number[:position] + replacement + number[position + 1 :]
    # The check character alone catches it, whatever the date rule says about the new digits ...
    assert id_check_char(mutated[:17]) != number[17]
    # ... so the mutated number is never accepted.
    with pytest.raises(DomainError) as info:
        ResidentId.parse(mutated, today=TODAY)
    assert info.value.code is ErrorCode.INVALID_ID_NUMBER


def test_single_digit_substitution_exhaustively_for_one_number() -> None:
    number = build_id(date(1990, 7, 15), "246")
    for position in range(17):
        for digit in "0123456789":
            if digit == number[position]:
                continue
            mutated = number[:position] + digit + number[position + 1 :]
            assert id_check_char(mutated[:17]) != number[17], (position, digit)
            with pytest.raises(DomainError):
                ResidentId.parse(mutated, today=TODAY)


@given(born=births, seq=sequences, position=st.integers(min_value=0, max_value=15))
def test_any_adjacent_transposition_changes_check_character(
    born: date, seq: str, position: int
) -> None:
    body = first17(born, seq)
    assume(body[position] != body[position + 1])
    swapped = body[:position] + body[position + 1] + body[position] + body[position + 2 :]
    assert id_check_char(swapped) != id_check_char(body)


# --- MobilePhone ---------------------------------------------------------------------------


@pytest.mark.parametrize("second", "3456789")
def test_mobile_prefixes_13_to_19_are_accepted(second: str) -> None:
    raw = f"1{second}012345678"
    assert MobilePhone.parse(raw).value == raw


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        " 13812345678 ",
        "+8613812345678",
        "8613812345678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "86 138-1234-5678",
        "138 1234 5678",
        "138-1234-5678",
        "\t138\t1234\t5678\n",
    ],
)
def test_accepted_spellings_normalise_to_11_digits(raw: str) -> None:
    assert MobilePhone.parse(raw).value == "13812345678"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "10812345678",  # 10x is not a mobile range
        "11812345678",
        "12812345678",
        "23812345678",
        "01012345678",  # landline with area code
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "+861381234567",
        "+86138123456789",
        "861381234567",  # 86 + 10 digits: not stripped, starts with 8
        "008613812345678",
        "+85213812345678",
        "1381234567a",
        "138.1234.5678",
        "(138)12345678",
        "+8612812345678",
        "８６13812345678",
    ],
)
def test_invalid_phones_are_refused(raw: str) -> None:
    refused(raw, ErrorCode.INVALID_PHONE)


def test_phone_repr_and_str_never_show_the_number() -> None:
    phone = MobilePhone.parse("13812345678")
    for text in (repr(phone), str(phone), f"{phone}", repr([phone])):
        assert "13812345678" not in text
        assert "1234" not in text
    assert repr(phone) == "MobilePhone(***)"


def test_phone_error_never_contains_the_number() -> None:
    error = refused("12812345678", ErrorCode.INVALID_PHONE)
    assert "12812345678" not in str(error)


def test_phone_full_width_digits_are_refused_or_normalised() -> None:
    raw = "13" + "".join(chr(ord(c) + 0xFEE0) for c in "812345678")
    try:
        phone = MobilePhone.parse(raw)
    except DomainError as e:
        assert e.code is ErrorCode.INVALID_PHONE
    else:
        assert phone.value == "13812345678"


@given(second=st.sampled_from("3456789"), rest=st.text("0123456789", min_size=9, max_size=9))
def test_phone_property_all_prefix_forms_agree(second: str, rest: str) -> None:
    number = f"1{second}{rest}"
    forms = [number, "+86" + number, "86" + number, f"{number[:3]} {number[3:7]} {number[7:]}"]
    assert {MobilePhone.parse(f).value for f in forms} == {number}


# --- bounded_text --------------------------------------------------------------------------


def test_bounded_text_strips() -> None:
    assert bounded_text("  你好 \n", limit=10) == "你好"


@pytest.mark.parametrize("raw", ["", "   ", "\n\t", "\u3000"])
def test_bounded_text_required_refuses_blank(raw: str) -> None:
    with pytest.raises(DomainError) as info:
        bounded_text(raw, limit=10)
    assert info.value.code is ErrorCode.REQUIRED


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_bounded_text_optional_returns_empty(raw: str) -> None:
    assert bounded_text(raw, limit=10, required=False) == ""


def test_bounded_text_at_limit_is_kept_whole() -> None:
    assert bounded_text("a" * 10, limit=10) == "a" * 10
    assert bounded_text("张" * 5, limit=5) == "张" * 5  # characters, not bytes


def test_bounded_text_length_is_measured_after_stripping() -> None:
    assert bounded_text("   abc   ", limit=3) == "abc"


@pytest.mark.parametrize("required", [True, False])
def test_bounded_text_over_limit_is_refused_not_truncated(required: bool) -> None:
    with pytest.raises(DomainError) as info:
        bounded_text("a" * 11, limit=10, required=required)
    assert info.value.code is ErrorCode.TOO_LONG
    assert "10" in info.value.message
    assert "a" * 11 not in str(info.value)


@given(text=st.text(max_size=40), limit=st.integers(min_value=0, max_value=30))
def test_bounded_text_never_truncates(text: str, limit: int) -> None:
    try:
        result = bounded_text(text, limit=limit, required=False)
    except DomainError as e:
        assert e.code is ErrorCode.TOO_LONG
        assert len(text.strip()) > limit
    else:
        assert result == text.strip()
        assert len(result) <= limit


# --- age_on / age_band ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (date(2000, 6, 1), date(2000, 6, 1), 0),
        (date(2000, 6, 1), date(2018, 5, 31), 17),
        (date(2000, 6, 1), date(2018, 6, 1), 18),
        (date(2000, 6, 1), date(2018, 6, 2), 18),
        (date(2000, 12, 31), date(2001, 1, 1), 0),
        (date(2000, 2, 29), date(2018, 2, 28), 17),
        (date(2000, 2, 29), date(2018, 3, 1), 18),
        (date(2000, 2, 29), date(2004, 2, 29), 4),
    ],
)
def test_age_on(birth: date, today: date, age: int) -> None:
    assert age_on(birth, today) == age


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-13"),
        (13, "0-13"),
        (14, "14-17"),
        (17, "14-17"),
        (18, "18-34"),
        (34, "18-34"),
        (35, "35-59"),
        (59, "35-59"),
        (60, "60+"),
        (105, "60+"),
    ],
)
def test_age_band_boundaries(age: int, band: str) -> None:
    birth = date(1900 + 10, 3, 15)
    today = date(birth.year + age, 3, 15)
    assert age_band(birth, today) == band
    if age > 0:
        # the day before the birthday the person is still one year younger
        assert age_band(birth, today - timedelta(days=1)) == age_band(
            birth, date(birth.year + age - 1, 3, 15)
        )


def test_age_band_of_unknown_birth_is_none() -> None:
    assert age_band(None, TODAY) is None


@given(birth=st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
def test_age_band_agrees_with_age(birth: date) -> None:
    age = age_on(birth, TODAY)
    band = age_band(birth, TODAY)
    low, _, high = band.rstrip("+").partition("-")  # type: ignore[union-attr]
    assert int(low) <= age
    if high:
        assert age <= int(high)


# --- mask_name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("李小龙", "李**"),
        ("欧阳娜娜", "欧***"),
        ("王", "王*"),
        ("X", "X*"),
        (None, None),
        ("", None),
    ],
)
def test_mask_name(name: str | None, masked: str | None) -> None:
    assert mask_name(name) == masked


@given(name=st.text(min_size=1, max_size=20))
def test_mask_name_keeps_only_first_character(name: str) -> None:
    masked = mask_name(name)
    assert masked is not None
    assert masked[0] == name[0]
    assert set(masked[1:]) == {"*"}
    assert len(masked) == max(2, len(name))
