"""The protected entities, by the names the policy file uses."""

from __future__ import annotations

from enum import StrEnum

from domain import models as m


class Entity(StrEnum):
    PERSON = "person"
    GUARDIANSHIP = "guardianship"
    FAMILY = "family"
    FAMILY_MEMBER = "family_member"
    VOLUNTEER_LINK = "volunteer_link"
    CASE = "case"
    CASE_STATUS_CHANGE = "case_status_change"
    CASE_CO_UNIT = "case_co_unit"
    CASE_ASSIGNMENT = "case_assignment"
    INTERVENTION = "intervention"
    ASSESSMENT = "assessment"
    ALERT = "alert"
    REFERRAL = "referral"
    CONSENT = "consent"
    STAFF = "staff"
    UNIT = "unit"
    EMERGENCY_GRANT = "emergency_grant"
    ACCESS_EVENT = "access_event"
    PARTNER_CLIENT = "partner_client"
    FOLLOW_UP = "follow_up"
    SCREENING_CAMPAIGN = "screening_campaign"


MODEL_ENTITY: dict[type, Entity] = {
    m.Person: Entity.PERSON,
    m.Guardianship: Entity.GUARDIANSHIP,
    m.Family: Entity.FAMILY,
    m.FamilyMember: Entity.FAMILY_MEMBER,
    m.VolunteerLink: Entity.VOLUNTEER_LINK,
    m.Case: Entity.CASE,
    m.CaseStatusChange: Entity.CASE_STATUS_CHANGE,
    m.CaseCoUnit: Entity.CASE_CO_UNIT,
    m.CaseAssignment: Entity.CASE_ASSIGNMENT,
    m.Intervention: Entity.INTERVENTION,
    m.Assessment: Entity.ASSESSMENT,
    m.ScreeningCampaign: Entity.SCREENING_CAMPAIGN,
    m.Alert: Entity.ALERT,
    m.Referral: Entity.REFERRAL,
    m.Consent: Entity.CONSENT,
    m.Staff: Entity.STAFF,
    m.Unit: Entity.UNIT,
    m.EmergencyGrant: Entity.EMERGENCY_GRANT,
    m.AccessEvent: Entity.ACCESS_EVENT,
    m.PartnerClient: Entity.PARTNER_CLIENT,
    m.FollowUp: Entity.FOLLOW_UP,
}


def entity_of(model: type) -> Entity:
    try:
        return MODEL_ENTITY[model]
    except KeyError:
        raise LookupError(f"{model.__name__} is not a gated entity") from None
