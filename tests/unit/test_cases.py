"""The case status machine: ``Case.transition`` against ``TRANSITIONS``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import product

import pytest

from domain.cases import NEEDS_REASON, TRANSITIONS, Case, CaseStatus, CaseStatusChange
from domain.errors import DomainError, ErrorCode

AT = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
EARLIER = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

ALLOWED = sorted((a, b) for a, targets in TRANSITIONS.items() for b in targets)
DISALLOWED = sorted((a, b) for a, b in product(CaseStatus, CaseStatus) if b not in TRANSITIONS[a])


def make_case(status: CaseStatus, **kw: object) -> Case:
    if status is CaseStatus.CLOSED:
        kw.setdefault("closed_at", EARLIER)
        kw.setdefault("closure_outcome", "已结案")
    return Case(id=1, status=status, **kw)


def snapshot(case: Case) -> tuple[object, ...]:
    return (case.status, case.closed_at, case.closure_outcome)


# --- the table itself ----------------------------------------------------------------------


def test_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(CaseStatus)


def test_expected_transitions() -> None:
    assert ALLOWED == sorted(
        [
            (CaseStatus.INTAKE, CaseStatus.ASSESSING),
            (CaseStatus.INTAKE, CaseStatus.CLOSED),
            (CaseStatus.ASSESSING, CaseStatus.ACTIVE),
            (CaseStatus.ASSESSING, CaseStatus.MONITORING),
            (CaseStatus.ASSESSING, CaseStatus.CLOSED),
            (CaseStatus.ACTIVE, CaseStatus.MONITORING),
            (CaseStatus.ACTIVE, CaseStatus.CLOSED),
            (CaseStatus.MONITORING, CaseStatus.ACTIVE),
            (CaseStatus.MONITORING, CaseStatus.CLOSED),
            (CaseStatus.CLOSED, CaseStatus.ASSESSING),
        ]
    )


def test_no_status_moves_to_itself_or_back_to_intake() -> None:
    for status, targets in TRANSITIONS.items():
        assert status not in targets
        assert CaseStatus.INTAKE not in targets


def test_every_open_status_can_be_closed_and_closed_only_reopens() -> None:
    for status in CaseStatus:
        if status is not CaseStatus.CLOSED:
            assert CaseStatus.CLOSED in TRANSITIONS[status]
    assert TRANSITIONS[CaseStatus.CLOSED] == frozenset({CaseStatus.ASSESSING})
    assert NEEDS_REASON == frozenset({CaseStatus.CLOSED})


# --- allowed transitions -------------------------------------------------------------------


@pytest.mark.parametrize(("start", "to"), ALLOWED, ids=lambda s: s.value)
def test_allowed_transition_moves_and_returns_history_entry(
    start: CaseStatus, to: CaseStatus
) -> None:
    case = make_case(start)
    change = case.transition(to, reason="评估完成", at=AT)
    assert case.status is to
    assert isinstance(change, CaseStatusChange)
    assert change.case_id == 1
    assert change.from_status is start
    assert change.to_status is to
    assert change.reason == "评估完成"
    assert change.changed_at == AT


@pytest.mark.parametrize(
    ("start", "to"), [p for p in ALLOWED if p[1] not in NEEDS_REASON], ids=lambda s: s.value
)
def test_non_closing_transitions_need_no_reason(start: CaseStatus, to: CaseStatus) -> None:
    case = make_case(start)
    change = case.transition(to, reason=None, at=AT)
    assert case.status is to
    assert change.reason is None


@pytest.mark.parametrize(
    ("start", "to"),
    [p for p in ALLOWED if CaseStatus.CLOSED not in p],
    ids=lambda s: s.value,
)
def test_transitions_between_open_statuses_leave_closure_fields_alone(
    start: CaseStatus, to: CaseStatus
) -> None:
    case = make_case(start)
    case.transition(to, reason=None, at=AT)
    assert case.closed_at is None
    assert case.closure_outcome is None


# --- disallowed transitions ----------------------------------------------------------------


@pytest.mark.parametrize(("start", "to"), DISALLOWED, ids=lambda s: s.value)
def test_disallowed_transition_is_refused_and_case_unchanged(
    start: CaseStatus, to: CaseStatus
) -> None:
    case = make_case(start)
    before = snapshot(case)
    with pytest.raises(DomainError) as info:
        case.transition(to, reason="理由", at=AT)
    assert info.value.code is ErrorCode.INVALID_TRANSITION
    assert info.value.field == ("status",)
    assert snapshot(case) == before


def test_refusal_message_names_allowed_targets() -> None:
    case = make_case(CaseStatus.INTAKE)
    with pytest.raises(DomainError) as info:
        case.transition(CaseStatus.ACTIVE, reason=None, at=AT)
    assert "assessing" in info.value.message
    assert "closed" in info.value.message


# --- closing -------------------------------------------------------------------------------

OPEN = [s for s in CaseStatus if s is not CaseStatus.CLOSED]


@pytest.mark.parametrize("start", OPEN, ids=lambda s: s.value)
@pytest.mark.parametrize("reason", [None, "", "   ", "\n\t"])
def test_closing_without_reason_is_refused(start: CaseStatus, reason: str | None) -> None:
    case = make_case(start)
    with pytest.raises(DomainError) as info:
        case.transition(CaseStatus.CLOSED, reason=reason, at=AT)
    assert info.value.code is ErrorCode.REQUIRED
    assert info.value.field == ("reason",)
    assert snapshot(case) == (start, None, None)


@pytest.mark.parametrize("start", OPEN, ids=lambda s: s.value)
def test_closing_records_time_and_outcome(start: CaseStatus) -> None:
    case = make_case(start)
    change = case.transition(CaseStatus.CLOSED, reason="服务目标达成", at=AT)
    assert case.status is CaseStatus.CLOSED
    assert case.closed_at == AT
    assert case.closure_outcome == "服务目标达成"
    assert change.reason == "服务目标达成"


def test_closing_keeps_the_given_timezone_aware_instant() -> None:
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2024, 6, 1, 17, 30, tzinfo=shanghai)
    case = make_case(CaseStatus.ACTIVE)
    case.transition(CaseStatus.CLOSED, reason="结案", at=at)
    assert case.closed_at == AT
    assert case.closed_at.utcoffset() is not None


# --- reopening -----------------------------------------------------------------------------


def test_reopening_goes_to_assessing_and_clears_closed_at() -> None:
    case = make_case(CaseStatus.CLOSED)
    change = case.transition(CaseStatus.ASSESSING, reason="复发", at=AT)
    assert case.status is CaseStatus.ASSESSING
    assert case.closed_at is None
    assert change.from_status is CaseStatus.CLOSED
    assert change.to_status is CaseStatus.ASSESSING
    assert change.reason == "复发"


def test_reopening_needs_no_reason() -> None:
    case = make_case(CaseStatus.CLOSED)
    case.transition(CaseStatus.ASSESSING, reason=None, at=AT)
    assert case.status is CaseStatus.ASSESSING


@pytest.mark.parametrize("to", [s for s in CaseStatus if s is not CaseStatus.ASSESSING])
def test_closed_case_cannot_reopen_elsewhere(to: CaseStatus) -> None:
    case = make_case(CaseStatus.CLOSED)
    with pytest.raises(DomainError) as info:
        case.transition(to, reason="理由", at=AT)
    assert info.value.code is ErrorCode.INVALID_TRANSITION
    assert case.closed_at == EARLIER


# --- a whole life --------------------------------------------------------------------------


def test_full_lifecycle_produces_one_history_entry_per_step() -> None:
    case = make_case(CaseStatus.INTAKE)
    steps = [
        (CaseStatus.ASSESSING, None),
        (CaseStatus.ACTIVE, None),
        (CaseStatus.MONITORING, None),
        (CaseStatus.ACTIVE, "风险回升"),
        (CaseStatus.CLOSED, "稳定"),
        (CaseStatus.ASSESSING, "再次求助"),
        (CaseStatus.CLOSED, "转介完成"),
    ]
    history = []
    for n, (to, reason) in enumerate(steps):
        history.append(case.transition(to, reason=reason, at=AT + timedelta(days=n)))
    assert [(h.from_status, h.to_status) for h in history] == list(
        zip([CaseStatus.INTAKE] + [s for s, _ in steps[:-1]], [s for s, _ in steps], strict=True)
    )
    assert case.status is CaseStatus.CLOSED
    assert case.closed_at == AT + timedelta(days=6)
    assert case.closure_outcome == "转介完成"
