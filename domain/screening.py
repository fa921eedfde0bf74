"""School screening campaigns (学校心理普查): a campaign's CSV of results, validated as a whole,
and per-grade aggregates with small-cell suppression.

A screening result is an assessment with a campaign and a person but no case: most students
screened need no case, and opening one per student would put thousands of minors on file as
"cases". Students above the campaign's threshold become alerts for the school counsellor.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.assessments import Instrument
from domain.base import Base, Id, Protected, UTCDateTime, enum_column, utcnow
from domain.classification import FieldClass, classified
from domain.errors import DomainError, ErrorCode
from domain.instruments import DEFINITIONS, Result, score
from domain.values import ResidentId

DEFAULT_THRESHOLDS: dict[Instrument, int] = {
    Instrument.PHQ9: 10,  # moderate or worse (Kroenke 2001)
    Instrument.GAD7: 10,  # moderate or worse (Spitzer 2006)
    Instrument.EPDS: 13,  # probable depression (Cox 1987)
    Instrument.AD8: 2,  # cognitive impairment likely (Galvin 2005)
}
"""Scores at or above these flag a student, unless the campaign sets its own threshold."""

MAX_ROWS = 5000
"""One import is one school's campaign, not a city's: larger files are split by the school."""

GRADES = range(1, 13)
"""小学一年级 = 1 ... 高中三年级 = 12."""


class ScreeningCampaign(Protected, Base):
    __tablename__ = "screening_campaigns"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    school_unit_id: Mapped[int] = mapped_column(
        ForeignKey("units.id"), index=True, info=classified(FieldClass.CASE_ADMIN)
    )
    name: Mapped[str] = mapped_column(String(100), info=classified(FieldClass.CASE_ADMIN))
    instrument: Mapped[Instrument] = mapped_column(
        enum_column(Instrument), info=classified(FieldClass.CASE_ADMIN)
    )
    threshold: Mapped[int] = mapped_column(Integer, info=classified(FieldClass.CASE_ADMIN))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, info=classified(FieldClass.CASE_ADMIN)
    )
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


def check_threshold(instrument: Instrument, threshold: int | None) -> int:
    if threshold is None:
        return DEFAULT_THRESHOLDS[instrument]
    top = DEFINITIONS[instrument].items * DEFINITIONS[instrument].max_answer
    if not 1 <= threshold <= top:
        raise DomainError(
            ErrorCode.INVALID, f"阈值须在1到{top}之间（{instrument.value}）", ("threshold",)
        )
    return threshold


# -- the CSV --------------------------------------------------------------------------------------

HEADER_ALIASES: dict[str, str] = {
    "id_number": "id_number",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "grade": "grade",
    "年级": "grade",
    "class": "class",
    "班级": "class",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in the file, where a person can find it: line 1 is the header."""

    line: int
    column: str | None
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class ScreeningRow:
    line: int
    id_number: str
    grade: int
    class_name: str
    answers: list[int]
    result: Result


@dataclass(slots=True)
class ParsedFile:
    rows: list[ScreeningRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _item_column(header: str, items: int) -> int | None:
    """``q3``, ``Q3``, ``3`` or ``第3题`` name item 3."""
    text = header.removeprefix("q").removeprefix("第").removesuffix("题")
    if _ascii_digits(text) and 1 <= int(text) <= items:
        return int(text)
    return None


def parse_csv(text: str, instrument: Instrument, *, today: date) -> ParsedFile:
    """Validate every row and report every problem with its line; never stop at the first.

    Values never appear in messages (an ID number in an error report is a disclosure too).
    """
    out = ParsedFile()
    items = DEFINITIONS[instrument].items
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        out.errors.append(RowError(1, None, ErrorCode.REQUIRED, "文件为空"))
        return out
    columns: dict[str, int] = {}
    item_at: dict[int, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower()
        if name in HEADER_ALIASES:
            columns[HEADER_ALIASES[name]] = index
        elif (item := _item_column(name, items)) is not None:
            item_at[item] = index
    missing = [c for c in ("id_number", "grade", "class") if c not in columns]
    missing += [f"q{i}" for i in range(1, items + 1) if i not in item_at]
    if missing:
        out.errors.append(
            RowError(
                1,
                None,
                ErrorCode.REQUIRED,
                f"表头缺少列：{'、'.join(missing)}（{instrument.value} 需要 q1 到 q{items}）",
            )
        )
        return out
    seen: dict[str, int] = {}
    data_rows = 0
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        data_rows += 1
        if data_rows > MAX_ROWS:
            out.errors.append(
                RowError(line, None, ErrorCode.TOO_LONG, f"每次最多导入{MAX_ROWS}行，请分批导入")
            )
            break
        row = _row(cells, line, columns, item_at, instrument, today, out.errors)
        if row is None:
            continue
        if row.id_number in seen:
            out.errors.append(
                RowError(
                    line,
                    "id_number",
                    ErrorCode.DUPLICATE,
                    f"与第{seen[row.id_number]}行是同一名学生",
                )
            )
            continue
        seen[row.id_number] = line
        out.rows.append(row)
    if not out.rows and not out.errors:
        out.errors.append(RowError(2, None, ErrorCode.REQUIRED, "文件中没有数据行"))
    return out


def _ascii_digits(text: str) -> bool:
    """0-9 only: ``"²".isdigit()`` is true, and ``int("²")`` raises."""
    return text.isascii() and text.isdigit() and len(text) <= 6


def _cell(cells: Sequence[str], index: int) -> str:
    return cells[index].strip() if index < len(cells) else ""


def _row(
    cells: Sequence[str],
    line: int,
    columns: dict[str, int],
    item_at: dict[int, int],
    instrument: Instrument,
    today: date,
    errors: list[RowError],
) -> ScreeningRow | None:
    before = len(errors)
    number = ""
    try:
        number = ResidentId.parse(_cell(cells, columns["id_number"]), today=today).value
    except DomainError as e:
        errors.append(RowError(line, "id_number", e.code, e.message))
    raw_grade = _cell(cells, columns["grade"])
    grade = int(raw_grade) if _ascii_digits(raw_grade) else 0
    if grade not in GRADES:
        errors.append(RowError(line, "grade", ErrorCode.INVALID, "年级须为1到12的数字"))
    class_name = _cell(cells, columns["class"])
    if not class_name or len(class_name) > 20:
        errors.append(RowError(line, "class", ErrorCode.INVALID, "班级不能为空，最多20个字"))
    answers: list[int] = []
    for item in sorted(item_at):
        raw = _cell(cells, item_at[item])
        if not _ascii_digits(raw):
            errors.append(RowError(line, f"q{item}", ErrorCode.INVALID, "作答须为整数"))
            continue
        answers.append(int(raw))
    if len(errors) > before:
        return None
    try:
        result = score(instrument, answers)
    except DomainError as e:
        column = f"q{e.field[1]}" if len(e.field) > 1 else None
        errors.append(RowError(line, column, e.code, e.message))
        return None
    return ScreeningRow(line, number, grade, class_name, answers, result)


# -- aggregates with small-cell suppression ------------------------------------------------------


@dataclass(slots=True)
class Cell:
    count: int
    suppressed: bool = False
    published: bool = True
    """False for a count the table never shows but a reader could work out by subtraction
    (the students at or above the threshold inside the band the threshold cuts)."""

    def shown(self) -> int | None:
        return None if self.suppressed else self.count


@dataclass(slots=True)
class GradeRow:
    grade: int | None
    """None: all grades."""
    screened: Cell
    flagged: Cell
    """At or above the campaign's threshold (self-harm answers are not counted here: that an
    answer was given below the threshold is itself a disclosure)."""
    bands: dict[str, Cell]
    cut_band_over: Cell
    """Unpublished: the students at or above the threshold in the band it cuts."""


@dataclass(frozen=True, slots=True)
class Tally:
    grade: int
    severity: str
    over: bool
    """Score at or above the campaign's threshold."""
    count: int


@dataclass(frozen=True, slots=True)
class BandSpan:
    label: str
    low: int
    high: int


def _grade_row(grade: int | None, bands: Sequence[BandSpan]) -> GradeRow:
    return GradeRow(
        grade, Cell(0), Cell(0), {b.label: Cell(0) for b in bands}, Cell(0, published=False)
    )


def suppressed_table(
    tallies: Iterable[Tally], bands: Sequence[BandSpan], cut: int, threshold: int
) -> tuple[list[GradeRow], GradeRow]:
    """Per-grade counts where no count from 1 to ``threshold - 1`` can be read or worked out.

    * Primary suppression hides the small counts, and a "flagged" or worse-than-lowest band
      count equal to its grade's total (that would say every student in the grade is affected).
    * Complementary suppression then hides one more published cell in any sum that has exactly
      one unknown, since subtraction would give it back. The sums: a grade's bands add up to its
      total; the bands at or above the threshold (and, when the threshold cuts a band, the
      unpublished part of that band above it) add up to the flagged count; the grades add up to
      the campaign's row.

    This is the usual table-level rule for one published table. It does not protect against
    differencing two publications of a campaign taken before and after a further import.
    """
    above = [b.label for b in bands if b.low >= cut]
    cut_band = next((b.label for b in bands if b.low < cut <= b.high), None)
    by_grade: dict[int, GradeRow] = {}
    total = _grade_row(None, bands)
    for t in tallies:
        row = by_grade.setdefault(t.grade, _grade_row(t.grade, bands))
        for target in (row, total):
            target.screened.count += t.count
            target.bands[t.severity].count += t.count
            if t.over:
                target.flagged.count += t.count
                if t.severity == cut_band:
                    target.cut_band_over.count += t.count
    rows = [by_grade[g] for g in sorted(by_grade)]
    lowest = bands[0].label
    for row in [*rows, total]:
        for cell in (row.screened, row.flagged, row.cut_band_over, *row.bands.values()):
            cell.suppressed = 0 < cell.count < threshold
        everyone = row.screened.count
        for cell in (row.flagged, *(c for b, c in row.bands.items() if b != lowest)):
            if everyone and cell.count == everyone:
                cell.suppressed = True
    sums: list[tuple[Cell, list[Cell]]] = []
    for row in [*rows, total]:
        sums.append((row.screened, list(row.bands.values())))
        flagged_parts = [row.bands[b] for b in above]
        if cut_band is not None:
            flagged_parts.append(row.cut_band_over)
        sums.append((row.flagged, flagged_parts))
    sums.append((total.screened, [r.screened for r in rows]))
    sums.append((total.flagged, [r.flagged for r in rows]))
    sums.append((total.cut_band_over, [r.cut_band_over for r in rows]))
    sums += [(total.bands[b.label], [r.bands[b.label] for r in rows]) for b in bands]
    changed = True
    while changed:
        changed = False
        for whole, parts in sums:
            # A sum with exactly one unknown gives it away: act when that one is a hidden count
            # (an unpublished count that is not small may be worked out; it discloses nothing).
            unknown = [c for c in (whole, *parts) if c.suppressed or not c.published]
            if len(unknown) != 1 or not unknown[0].suppressed:
                continue
            candidates = sorted(
                (c for c in parts if c.published and c.count > 0 and not c.suppressed),
                key=lambda c: c.count,
            )
            if candidates:
                candidates[0].suppressed = True
            elif whole.published and whole.count > 0 and not whole.suppressed:
                whole.suppressed = True
            else:
                continue
            changed = True
    return rows, total
