"""Standard instruments (测评量表) as data: items, answer scale, scoring, severity bands, and the
answers that demand an immediate high-risk alert.

Sources (scoring and cut-offs as published):
* PHQ-9 — Kroenke K, Spitzer RL, Williams JB. The PHQ-9: validity of a brief depression severity
  measure. J Gen Intern Med 2001;16(9):606-13. Nine items scored 0-3; bands 0-4 minimal, 5-9 mild,
  10-14 moderate, 15-19 moderately severe, 20-27 severe. Item 9 asks about thoughts of self-harm.
* GAD-7 — Spitzer RL, Kroenke K, Williams JB, Löwe B. A brief measure for assessing generalized
  anxiety disorder: the GAD-7. Arch Intern Med 2006;166(10):1092-7. Seven items 0-3; bands 0-4
  minimal, 5-9 mild, 10-14 moderate, 15-21 severe.
* EPDS — Cox JL, Holden JM, Sagovsky R. Detection of postnatal depression: development of the
  10-item Edinburgh Postnatal Depression Scale. Br J Psychiatry 1987;150:782-6. Ten items 0-3
  (items 1, 2 and 4 are reverse-worded on paper; answers here are the item scores); a total of 13
  or more suggests probable depression. Item 10 asks about thoughts of self-harm.
* AD8 — Galvin JE, et al. The AD8: a brief informant interview to detect dementia. Neurology
  2005;65(4):559-64. Eight yes/no items (1 = a change); 2 or more suggests cognitive impairment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.assessments import Instrument
from domain.errors import DomainError, ErrorCode


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str


@dataclass(frozen=True)
class Definition:
    instrument: Instrument
    items: int
    max_answer: int
    bands: tuple[Band, ...]
    self_harm_item: int | None
    """1-based item whose score above 0 raises a high-risk alert at once."""


DEFINITIONS: dict[Instrument, Definition] = {
    Instrument.PHQ9: Definition(
        Instrument.PHQ9,
        9,
        3,
        (
            Band(0, 4, "minimal"),
            Band(5, 9, "mild"),
            Band(10, 14, "moderate"),
            Band(15, 19, "moderately_severe"),
            Band(20, 27, "severe"),
        ),
        self_harm_item=9,
    ),
    Instrument.GAD7: Definition(
        Instrument.GAD7,
        7,
        3,
        (
            Band(0, 4, "minimal"),
            Band(5, 9, "mild"),
            Band(10, 14, "moderate"),
            Band(15, 21, "severe"),
        ),
        self_harm_item=None,
    ),
    Instrument.EPDS: Definition(
        Instrument.EPDS,
        10,
        3,
        (Band(0, 12, "below_threshold"), Band(13, 30, "probable_depression")),
        self_harm_item=10,
    ),
    Instrument.AD8: Definition(
        Instrument.AD8,
        8,
        1,
        (Band(0, 1, "normal"), Band(2, 8, "cognitive_impairment_likely")),
        self_harm_item=None,
    ),
}


@dataclass(frozen=True)
class Result:
    score: int
    severity: str
    self_harm: bool


def score(instrument: Instrument, answers: Sequence[object]) -> Result:
    """Validate the answers and score them on the server (clients' totals are never trusted):
    each must be an integer in range, whatever the caller's types promised."""
    d = DEFINITIONS[instrument]
    if len(answers) != d.items:
        raise DomainError(
            ErrorCode.INVALID, f"{instrument.value} 需要 {d.items} 个条目的作答", ("answers",)
        )
    checked: list[int] = []
    for i, a in enumerate(answers, start=1):
        if not isinstance(a, int) or isinstance(a, bool) or not 0 <= a <= d.max_answer:
            raise DomainError(
                ErrorCode.INVALID, f"第{i}题的作答须为0到{d.max_answer}的整数", ("answers", str(i))
            )
        checked.append(a)
    total = sum(checked)
    band = next(b.label for b in d.bands if b.low <= total <= b.high)
    self_harm = d.self_harm_item is not None and checked[d.self_harm_item - 1] > 0
    return Result(total, band, self_harm)
