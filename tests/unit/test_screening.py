"""The screening file and the suppressed table, as plain functions."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.assessments import Instrument
from domain.screening import MAX_ROWS, Tally, parse_csv, suppressed_table
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


BANDS = ["minimal", "mild", "moderate", "severe"]

tallies = st.lists(
    st.builds(
        Tally,
        grade=st.integers(1, 4),
        severity=st.sampled_from(BANDS),
        flagged=st.booleans(),
        count=st.integers(1, 30),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(tallies, st.integers(2, 12))
def test_no_small_count_can_be_read_or_worked_out(data: list[Tally], threshold: int) -> None:
    rows, total = suppressed_table(data, BANDS, threshold)
    every = [*rows, total]
    for row in every:
        for cell in (row.screened, row.flagged, *row.bands.values()):
            if 0 < cell.count < threshold:
                assert cell.suppressed
        # Each sum the table publishes has zero or at least two hidden cells.
        group = [row.screened, *row.bands.values()]
        assert sum(c.suppressed for c in group) != 1
    for column in ("screened", "flagged"):
        group = [getattr(total, column), *(getattr(r, column) for r in rows)]
        assert sum(c.suppressed for c in group) != 1
    for band in BANDS:
        group = [total.bands[band], *(r.bands[band] for r in rows)]
        assert sum(c.suppressed for c in group) != 1
    assert total.screened.count == sum(t.count for t in data)


def test_large_cells_are_shown_as_they_are() -> None:
    rows, total = suppressed_table(
        [Tally(7, "minimal", False, 40), Tally(8, "minimal", False, 25)], BANDS, 10
    )
    assert [r.screened.shown() for r in rows] == [40, 25]
    assert total.screened.shown() == 65 and total.bands["mild"].shown() == 0
