"""Purpose of use: every request declares why it reads, from a fixed list, and a role may be
limited to some purposes (PIPL art. 6: purpose limitation). The purpose is written with every
disclosure in the access log.
"""

from __future__ import annotations

from enum import StrEnum

from domain.staff import Role


class Purpose(StrEnum):
    CASE_MANAGEMENT = "case_management"
    TREATMENT = "treatment"
    EMERGENCY = "emergency"
    REFERRAL = "referral"
    INTAKE = "intake"
    STATISTICS = "statistics"
    AUDIT = "audit"
    ADMINISTRATION = "administration"


ALL_CARE = frozenset({Purpose.CASE_MANAGEMENT, Purpose.INTAKE, Purpose.REFERRAL, Purpose.EMERGENCY})

ROLE_PURPOSES: dict[Role, tuple[Purpose, frozenset[Purpose]]] = {
    # role: (default, allowed)
    Role.ADMIN: (Purpose.ADMINISTRATION, frozenset({Purpose.ADMINISTRATION})),
    Role.AUDITOR: (Purpose.AUDIT, frozenset({Purpose.AUDIT})),
    Role.LEADER: (Purpose.STATISTICS, frozenset({Purpose.STATISTICS})),
    Role.OFFICE: (Purpose.STATISTICS, frozenset({Purpose.STATISTICS, Purpose.ADMINISTRATION})),
    Role.GRID_WORKER: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.SOCIAL_WORKER: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.SCHOOL_COUNSELLOR: (Purpose.CASE_MANAGEMENT, ALL_CARE | {Purpose.TREATMENT}),
    Role.COUNSELLOR: (Purpose.TREATMENT, ALL_CARE | {Purpose.TREATMENT}),
    Role.PSYCHIATRIST: (Purpose.TREATMENT, ALL_CARE | {Purpose.TREATMENT}),
    Role.POLICE: (Purpose.EMERGENCY, frozenset({Purpose.EMERGENCY, Purpose.CASE_MANAGEMENT})),
    Role.GOVERNANCE: (Purpose.CASE_MANAGEMENT, ALL_CARE | {Purpose.STATISTICS}),
    Role.CIVIL_AFFAIRS: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.FAMILY_PLANNING: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.VOLUNTEER: (Purpose.CASE_MANAGEMENT, frozenset({Purpose.CASE_MANAGEMENT})),
    Role.HOTLINE: (Purpose.INTAKE, frozenset({Purpose.INTAKE, Purpose.EMERGENCY})),
    Role.WOMENS_FEDERATION: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.DISABLED_FEDERATION: (Purpose.CASE_MANAGEMENT, ALL_CARE),
    Role.PARTNER: (Purpose.REFERRAL, frozenset({Purpose.REFERRAL, Purpose.TREATMENT})),
    Role.DUTY_OFFICER: (Purpose.EMERGENCY, frozenset({Purpose.EMERGENCY, Purpose.CASE_MANAGEMENT})),
}


class PurposeNotAllowed(ValueError):
    pass


def resolve_purpose(roles: frozenset[Role], declared: str | None) -> Purpose:
    """The declared purpose if the subject's roles allow it, else the first role's default."""
    ordered = sorted(roles)
    if declared is None or declared == "":
        if not ordered:
            return Purpose.CASE_MANAGEMENT
        return ROLE_PURPOSES[ordered[0]][0]
    try:
        purpose = Purpose(declared)
    except ValueError:
        raise PurposeNotAllowed(declared) from None
    if not any(purpose in ROLE_PURPOSES[r][1] for r in ordered):
        raise PurposeNotAllowed(declared)
    return purpose
