"""Every mapped model, imported once so the metadata is complete (for Alembic and tests)."""

from domain.access_log import AccessEvent, AuditChainHead, AuditCheckpoint, AuditPurgePermit
from domain.alerts import Alert, AlertTarget
from domain.assessments import Assessment
from domain.base import Base
from domain.cases import Case, CaseAssignment, CaseCoUnit, CaseStatusChange
from domain.consents import Consent
from domain.emergency import EmergencyGrant
from domain.families import Family, FamilyMember, VolunteerLink
from domain.followups import FollowUp
from domain.identity import (
    LoginAttempt,
    PartnerClient,
    PersistedQuery,
    RefreshToken,
    RevokedAccessToken,
)
from domain.interventions import Intervention
from domain.keys import DataKeyRecord, KeyCheck, KeyVersion
from domain.notifications import Notification, NotificationAttempt, UnitContact
from domain.persons import Guardianship, Person, PersonCategory
from domain.referrals import Referral
from domain.screening import ScreeningCampaign
from domain.staff import Staff, StaffRole
from domain.units import Unit

__all__ = [
    "AccessEvent",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditPurgePermit",
    "Alert",
    "AlertTarget",
    "Assessment",
    "Base",
    "Case",
    "CaseAssignment",
    "CaseCoUnit",
    "CaseStatusChange",
    "Consent",
    "EmergencyGrant",
    "Family",
    "FamilyMember",
    "FollowUp",
    "Guardianship",
    "Intervention",
    "DataKeyRecord",
    "KeyCheck",
    "KeyVersion",
    "LoginAttempt",
    "Notification",
    "NotificationAttempt",
    "PartnerClient",
    "PersistedQuery",
    "RefreshToken",
    "RevokedAccessToken",
    "Person",
    "PersonCategory",
    "Referral",
    "ScreeningCampaign",
    "Staff",
    "StaffRole",
    "Unit",
    "UnitContact",
    "VolunteerLink",
]
