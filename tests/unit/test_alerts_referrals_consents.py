"""Small state machines: alert acknowledgement, referral response/close, consent withdrawal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.alerts import ACK_DEADLINES, Alert, AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel
from domain.consents import Consent
from domain.errors import DomainError, ErrorCode
from domain.referrals import Referral, ReferralStatus

AT = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
LATER = AT + timedelta(hours=1)


def expect_invalid_transition(call: object, *args: object, **kw: object) -> DomainError:
    with pytest.raises(DomainError) as info:
        call(*args, **kw)  # type: ignore[operator]
    assert info.value.code is ErrorCode.INVALID_TRANSITION
    return info.value


# --- Alert ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [AlertStatus.OPEN, AlertStatus.ESCALATED])
def test_open_or_escalated_alert_can_be_acknowledged(status: AlertStatus) -> None:
    alert = Alert(id=1, status=status, risk_level=RiskLevel.HIGH)
    alert.acknowledge(staff_id=7, at=AT)
    assert alert.status is AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_at == AT
    assert alert.acknowledged_by_staff_id == 7


def test_acknowledging_twice_is_refused_and_first_acknowledgement_kept() -> None:
    alert = Alert(id=1, status=AlertStatus.OPEN)
    alert.acknowledge(staff_id=7, at=AT)
    expect_invalid_transition(alert.acknowledge, staff_id=8, at=LATER)
    assert alert.status is AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_at == AT
    assert alert.acknowledged_by_staff_id == 7


@pytest.mark.parametrize("status", [AlertStatus.ACKNOWLEDGED, AlertStatus.CLOSED])
def test_acknowledged_or_closed_alert_is_refused(status: AlertStatus) -> None:
    alert = Alert(id=1, status=status)
    expect_invalid_transition(alert.acknowledge, staff_id=7, at=AT)
    assert alert.status is status
    assert alert.acknowledged_at is None
    assert alert.acknowledged_by_staff_id is None


def test_ack_deadlines_tighten_with_risk() -> None:
    assert set(ACK_DEADLINES) == set(RiskLevel)
    assert ACK_DEADLINES[RiskLevel.HIGH] == timedelta(minutes=30)
    assert (
        ACK_DEADLINES[RiskLevel.HIGH]
        < ACK_DEADLINES[RiskLevel.MEDIUM]
        < ACK_DEADLINES[RiskLevel.LOW]
    )


def test_open_alert_past_deadline_is_overdue() -> None:
    past = utcnow() - timedelta(minutes=1)
    future = utcnow() + timedelta(hours=1)
    assert Alert(status=AlertStatus.OPEN, ack_deadline=past).overdue
    assert not Alert(status=AlertStatus.OPEN, ack_deadline=future).overdue


@pytest.mark.parametrize(
    "status", [AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED, AlertStatus.CLOSED]
)
def test_only_open_alerts_are_overdue(status: AlertStatus) -> None:
    alert = Alert(status=status, ack_deadline=utcnow() - timedelta(days=1))
    assert not alert.overdue


def test_acknowledging_ends_overdue() -> None:
    alert = Alert(status=AlertStatus.OPEN, ack_deadline=utcnow() - timedelta(minutes=1))
    assert alert.overdue
    alert.acknowledge(staff_id=1, at=utcnow())
    assert not alert.overdue


# --- Referral ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "status"), [(True, ReferralStatus.ACCEPTED), (False, ReferralStatus.DECLINED)]
)
def test_offered_referral_can_be_answered(accept: bool, status: ReferralStatus) -> None:
    referral = Referral(id=1, status=ReferralStatus.OFFERED)
    referral.respond(accept=accept, at=AT)
    assert referral.status is status
    assert referral.responded_at == AT


@pytest.mark.parametrize(
    "status", [ReferralStatus.ACCEPTED, ReferralStatus.DECLINED, ReferralStatus.CLOSED]
)
@pytest.mark.parametrize("accept", [True, False])
def test_answered_referral_cannot_be_answered_again(status: ReferralStatus, accept: bool) -> None:
    referral = Referral(id=1, status=status, responded_at=AT)
    expect_invalid_transition(referral.respond, accept=accept, at=LATER)
    assert referral.status is status
    assert referral.responded_at == AT


def test_respond_twice_keeps_the_first_answer() -> None:
    referral = Referral(id=1, status=ReferralStatus.OFFERED)
    referral.respond(accept=False, at=AT)
    expect_invalid_transition(referral.respond, accept=True, at=LATER)
    assert referral.status is ReferralStatus.DECLINED
    assert referral.responded_at == AT


@pytest.mark.parametrize("status", [ReferralStatus.OFFERED, ReferralStatus.ACCEPTED])
def test_live_referral_can_be_closed(status: ReferralStatus) -> None:
    referral = Referral(id=1, status=status)
    referral.close()
    assert referral.status is ReferralStatus.CLOSED


@pytest.mark.parametrize("status", [ReferralStatus.CLOSED, ReferralStatus.DECLINED])
def test_ended_referral_cannot_be_closed(status: ReferralStatus) -> None:
    referral = Referral(id=1, status=status)
    expect_invalid_transition(referral.close)
    assert referral.status is status


def test_closed_referral_cannot_be_accepted() -> None:
    referral = Referral(id=1, status=ReferralStatus.OFFERED)
    referral.close()
    expect_invalid_transition(referral.respond, accept=True, at=AT)
    assert referral.status is ReferralStatus.CLOSED
    assert referral.responded_at is None


# --- Consent -------------------------------------------------------------------------------


def test_consent_without_end_is_in_force() -> None:
    assert Consent(id=1, given_at=AT).in_force(AT + timedelta(days=3650))


def test_consent_in_force_until_valid_until_exclusive() -> None:
    consent = Consent(id=1, given_at=AT, valid_until=LATER)
    assert consent.in_force(LATER - timedelta(microseconds=1))
    assert not consent.in_force(LATER)
    assert not consent.in_force(LATER + timedelta(seconds=1))


def test_withdrawn_consent_is_not_in_force_even_before_it_expires() -> None:
    consent = Consent(id=1, given_at=AT, valid_until=AT + timedelta(days=365))
    consent.withdraw(LATER)
    assert consent.withdrawn_at == LATER
    assert not consent.in_force(LATER)
    assert not consent.in_force(AT + timedelta(days=1))


def test_withdrawal_takes_effect_without_end_date() -> None:
    consent = Consent(id=1, given_at=AT)
    assert consent.in_force(LATER)
    consent.withdraw(LATER)
    assert not consent.in_force(LATER + timedelta(days=1))


def test_withdrawing_twice_is_refused_and_first_time_kept() -> None:
    consent = Consent(id=1, given_at=AT)
    consent.withdraw(AT)
    expect_invalid_transition(consent.withdraw, LATER)
    assert consent.withdrawn_at == AT


def test_expired_consent_can_still_be_withdrawn() -> None:
    consent = Consent(id=1, given_at=AT, valid_until=LATER)
    consent.withdraw(LATER + timedelta(days=1))
    assert consent.withdrawn_at == LATER + timedelta(days=1)


def test_acknowledgement_deadlines_are_configurable() -> None:
    from api.settings import Settings

    settings = Settings.from_env({"XINQIAO_ACK_DEADLINES": "high=15m, low=2d"})
    assert settings.ack_deadlines[RiskLevel.HIGH] == timedelta(minutes=15)
    assert settings.ack_deadlines[RiskLevel.MEDIUM] == timedelta(hours=24)
    assert settings.ack_deadlines[RiskLevel.LOW] == timedelta(days=2)
    assert Settings.from_env({}).ack_deadlines == ACK_DEADLINES
    for bad in ("high=0m", "urgent=5m", "high=5s", "high"):
        with pytest.raises(SystemExit, match="ack deadline"):
            Settings.from_env({"XINQIAO_ACK_DEADLINES": bad})
