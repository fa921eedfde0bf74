"""Domain enums exposed to GraphQL under their own names."""

import strawberry

from domain.alerts import AlertResolution, AlertStatus
from domain.assessments import Instrument
from domain.cases import CaseStatus, RiskLevel, SourceChannel
from domain.consents import ConsentGiver
from domain.families import MemberRelationship, SpecialFamilyType
from domain.interventions import InterventionKind
from domain.persons import Gender, GuardianRelationship, PopulationCategory
from domain.referrals import ReferralStatus
from domain.staff import Role
from domain.units import UnitKind

for _enum in (
    AlertResolution,
    AlertStatus,
    Instrument,
    CaseStatus,
    RiskLevel,
    SourceChannel,
    ConsentGiver,
    MemberRelationship,
    SpecialFamilyType,
    InterventionKind,
    Gender,
    GuardianRelationship,
    PopulationCategory,
    ReferralStatus,
    Role,
    UnitKind,
):
    strawberry.enum(_enum)

__all__ = [
    "AlertResolution",
    "AlertStatus",
    "CaseStatus",
    "ConsentGiver",
    "Gender",
    "GuardianRelationship",
    "Instrument",
    "InterventionKind",
    "MemberRelationship",
    "PopulationCategory",
    "ReferralStatus",
    "RiskLevel",
    "Role",
    "SourceChannel",
    "SpecialFamilyType",
    "UnitKind",
]
