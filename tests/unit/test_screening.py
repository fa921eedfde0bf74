"""The screening file and the suppressed table, as plain functions."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.assessments import Instrument
from domain.screening import MAX_ROWS, BandSpan, Cell, Tally, parse_csv, suppressed_table
from domain.values import id_check_char

TODAY = date(2026, 11, 22)


def number(n: int) -> str:
    body = f"99010120110301{n:03d}"[:17]
    return body + id_check_char(body)


def gad7(rows: list[str]) -> str:
    return "\n".join(["id_number,grade,class,q1,q2,q3,q4,q5,q6,q7", *rows])


def test_a_valid_file_is_read_with_its_lines_and_scores() -> None:
    text = gad7([f"{number(1)},8,3班,3,3,3,1,0,0,0", "", f"{number(2)},8,3班,0,0,0,0,0,0,0"])
    parsed = parse_csv(text, Instrument.GAD7, today=TODAY)
    assert parsed.errors == []
    assert [(r.line, r.result.score, r.result.severity) for r in parsed.rows] == [
        (2, 10, "moderate"),
        (4, 0, "minimal"),
    ]


def test_quoted_cells_with_newlines_keep_line_numbers_right() -> None:
    text = gad7([f'{number(1)},8,"3\n班",0,0,0,0,0,0,0', f"{number(2)},8,3班,0,0,0,0,0,9,0"])
    parsed = parse_csv(text, Instrument.GAD7, today=TODAY)
    assert [(e.line, e.column) for e in parsed.errors] == [(4, "q6")]


def test_errors_never_echo_the_values() -> None:
    bad = number(3)[:-1] + ("1" if number(3)[-1] != "1" else "2")
    parsed = parse_csv(gad7([f"{bad},8,3班,0,0,0,0,0,0,0"]), Instrument.GAD7, today=TODAY)
    assert len(parsed.errors) == 1 and bad not in parsed.errors[0].message


def test_empty_and_oversized_files() -> None:
    assert parse_csv("", Instrument.GAD7, today=TODAY).errors[0].line == 1
    assert parse_csv(gad7([]), Instrument.GAD7, today=TODAY).errors[0].code == "REQUIRED"
    many = gad7([f"{number(i % 900)},8,1班,0,0,0,0,0,0,0" for i in range(MAX_ROWS + 1)])
    assert parse_csv(many, Instrument.GAD7, today=TODAY).errors[-1].code == "TOO_LONG"


BANDS = [
    BandSpan("minimal", 0, 4),
    BandSpan("mild", 5, 9),
    BandSpan("moderate", 10, 14),
    BandSpan("severe", 15, 21),
]
LABELS = [b.label for b in BANDS]


@st.composite
def campaigns(draw: st.DrawFn) -> tuple[list[Tally], int]:
    """Tallies consistent with a threshold: bands wholly above it are over, bands below are not,
    the band it cuts may be either."""
    cut = draw(st.integers(1, 21))
    tallies = []
    for _ in range(draw(st.integers(0, 20))):
        band = draw(st.sampled_from(BANDS))
        if band.low >= cut:
            over = True
        elif band.high < cut:
            over = False
        else:
            over = draw(st.booleans())
        tallies.append(Tally(draw(st.integers(1, 4)), band.label, over, draw(st.integers(1, 30))))
    return tallies, cut


def _unknowns(cells: list[Cell]) -> list[Cell]:
    return [c for c in cells if c.suppressed or not c.published]


@settings(max_examples=400, deadline=None)
@given(campaigns(), st.integers(2, 12))
def test_no_small_count_can_be_read_or_worked_out(
    data: tuple[list[Tally], int], threshold: int
) -> None:
    tallies, cut = data
    rows, total = suppressed_table(tallies, BANDS, cut, threshold)
    above = [b.label for b in BANDS if b.low >= cut]
    cut_band = next((b.label for b in BANDS if b.low < cut <= b.high), None)
    for row in [*rows, total]:
        for cell in (row.screened, row.flagged, *row.bands.values()):
            if 0 < cell.count < threshold:
                assert cell.suppressed, "a small count is shown"
        # An attacker solves each published sum with one unknown: it must not be small.
        equations = [[row.screened, *row.bands.values()]]
        flagged = [row.flagged, *(row.bands[b] for b in above)]
        equations.append(flagged + ([row.cut_band_over] if cut_band else []))
        for cells in equations:
            unknown = _unknowns(cells)
            if len(unknown) == 1:
                assert not 0 < unknown[0].count < threshold, "a small count can be derived"
        if row.screened.count and not row.flagged.suppressed:
            assert row.flagged.count < row.screened.count, "a whole grade shown as flagged"
    for column in ("screened", "flagged", "cut_band_over"):
        cells = [getattr(total, column), *(getattr(r, column) for r in rows)]
        unknown = _unknowns(cells)
        if len(unknown) == 1:
            assert not 0 < unknown[0].count < threshold
    for band in LABELS:
        unknown = _unknowns([total.bands[band], *(r.bands[band] for r in rows)])
        if len(unknown) == 1:
            assert not 0 < unknown[0].count < threshold
    assert total.screened.count == sum(t.count for t in tallies)
    assert total.flagged.count == sum(t.count for t in tallies if t.over)


def test_the_reviewers_table_no_longer_gives_the_self_harm_answer_away() -> None:
    """Grade 7: 12 moderate and over the threshold; one student scored low but answered the
    self-harm item. Flagged counts threshold only, so 13 - 12 cannot reveal that student."""
    tallies = [Tally(7, "moderate", True, 12), Tally(7, "minimal", False, 30)]
    rows, _ = suppressed_table(tallies, BANDS, 10, 10)
    assert rows[0].flagged.shown() == 12


def test_large_cells_are_shown_as_they_are() -> None:
    rows, total = suppressed_table(
        [Tally(7, "minimal", False, 40), Tally(8, "minimal", False, 25)], BANDS, 10, 10
    )
    assert [r.screened.shown() for r in rows] == [40, 25]
    assert total.screened.shown() == 65 and total.bands["mild"].shown() == 0
