"""Instrument scoring against the published bands."""

from __future__ import annotations

import pytest

from domain.assessments import Instrument
from domain.errors import DomainError
from domain.instruments import DEFINITIONS, score


@pytest.mark.parametrize(
    "instrument, answers, total, band, harm",
    [
        (Instrument.PHQ9, [0] * 9, 0, "minimal", False),
        (Instrument.PHQ9, [1] * 5 + [0] * 4, 5, "mild", False),
        (Instrument.PHQ9, [2] * 5 + [0] * 4, 10, "moderate", False),
        (Instrument.PHQ9, [3] * 5 + [0] * 4, 15, "moderately_severe", False),
        (Instrument.PHQ9, [3] * 9, 27, "severe", True),
        (Instrument.PHQ9, [0] * 8 + [1], 1, "minimal", True),
        (Instrument.GAD7, [3] * 7, 21, "severe", False),
        (Instrument.GAD7, [2] * 5 + [0, 0], 10, "moderate", False),
        (Instrument.EPDS, [1] * 10, 10, "below_threshold", True),
        (Instrument.EPDS, [2] * 6 + [1, 0, 0, 0], 13, "probable_depression", False),
        (Instrument.AD8, [1, 1] + [0] * 6, 2, "cognitive_impairment_likely", False),
        (Instrument.AD8, [1] + [0] * 7, 1, "normal", False),
    ],
)
def test_scores_and_bands(
    instrument: Instrument, answers: list[int], total: int, band: str, harm: bool
) -> None:
    result = score(instrument, answers)
    assert (result.score, result.severity, result.self_harm) == (total, band, harm)


@pytest.mark.parametrize("instrument", list(Instrument))
def test_bands_cover_every_possible_total_exactly_once(instrument: Instrument) -> None:
    d = DEFINITIONS[instrument]
    for total in range(d.items * d.max_answer + 1):
        assert sum(b.low <= total <= b.high for b in d.bands) == 1


@pytest.mark.parametrize(
    "answers", [[0] * 8, [0] * 10, [4] + [0] * 8, [-1] + [0] * 8, [True] + [0] * 8]
)
def test_bad_answers_are_refused(answers: list[int]) -> None:
    with pytest.raises(DomainError) as err:
        score(Instrument.PHQ9, answers)
    assert err.value.code.value == "INVALID" and err.value.field[0] == "answers"
