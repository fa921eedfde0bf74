"""A consented referral lifts the minors overlay for the classes it shares, and only those: it
never unlocks what another relation of the viewer grants (review finding, ADR 0005)."""

from __future__ import annotations

from authz.entities import Entity
from authz.gate import Gate
from authz.policy import Policy
from authz.relations import Relation
from authz.subject import Subject
from domain.classification import FieldClass as F
from domain.staff import Role


def gate_for(role: Role) -> Gate:
    subject = Subject(1, "tester", 1, "/1/", "/1/", frozenset({role}))
    return Gate(session=None, subject=subject, policy=Policy(), sink=None)  # type: ignore[arg-type]


MINOR_SMD = frozenset({"minor", "under_14", "smd"})


def test_jurisdiction_over_a_minor_shows_basic_only() -> None:
    readable = gate_for(Role.PSYCHIATRIST).readable(
        Entity.PERSON, frozenset({Relation.JURISDICTION}), MINOR_SMD
    )
    assert readable == {F.BASIC}


def test_a_referral_sharing_basic_unlocks_nothing_more() -> None:
    readable = gate_for(Role.PSYCHIATRIST).readable(
        Entity.PERSON,
        frozenset({Relation.JURISDICTION, Relation.REFERRAL}),
        MINOR_SMD | {"share_basic"},
    )
    assert readable == {F.BASIC}


def test_a_referral_sharing_identity_opens_identity_and_no_more() -> None:
    readable = gate_for(Role.PSYCHIATRIST).readable(
        Entity.PERSON,
        frozenset({Relation.JURISDICTION, Relation.REFERRAL}),
        MINOR_SMD | {"share_basic", "share_identity"},
    )
    assert readable == {F.BASIC, F.IDENTITY}


def test_on_the_case_the_overlay_does_not_apply() -> None:
    readable = gate_for(Role.PSYCHIATRIST).readable(
        Entity.PERSON, frozenset({Relation.ASSIGNED}), MINOR_SMD
    )
    assert {F.IDENTITY, F.CONTACT, F.ID_NUMBER, F.CLINICAL} <= readable
