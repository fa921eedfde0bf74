"""Small builders for the records a test needs, made the way the service makes them.

Two kinds, so that a test says how its record came to be:

* ``make_*`` go through the public GraphQL API, as a named account that may write there, and
  return the new record's global id. Each fails the test if the mutation reports an error.
* ``insert_*`` write through a system session (``domain.session.system_session``, as operator
  paths do: an import, a migration) for what the API does not make: records in a state it never
  creates (a closed case, a withdrawn consent, a stale referral), a school's roster import, or a
  database with no district at all. Sealed columns are sealed under the owner's data key exactly
  as the service seals them (``api.keyring.seal_row``). They take the open session and flush,
  so a test adds several records and commits once; they return the row.

Tests read the demo district's ids (``api.district``) and build everything else here; none
imports the demo generator (``api.cli.demo``), which keeps its own tests. Inside the ``api``
fixture whatever a builder writes is rolled back with the test.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.keyring import seal_row
from domain import models as m
from domain.consents import ConsentGiver
from domain.keys import KeyRing
from domain.persons import Gender
from domain.referrals import ReferralStatus
from domain.session import system_session
from domain.units import UnitKind
from domain.values import id_check_char

# --- ids ---------------------------------------------------------------------------------------


def gid(type_name: str, number: int) -> str:
    """The GraphQL global id of a row."""
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


def number_of(global_id: str) -> int:
    """The row id inside a GraphQL global id."""
    return int(base64.b64decode(global_id).decode().split(":")[1])


def id_number(region: str, born: date, seq: int) -> str:
    """A valid 18-character resident ID number. Regions 9901xx are used by no demo person, so
    a test that picks its own region and sequence owns the number."""
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


def grid(api: Any, community: int = 0) -> str:
    """The global id of a demo community's grid (0, 1: 东湖 street; 2, 3: 西山)."""
    return gid("Unit", api.district.communities[community]["grid"])


# --- through the API ----------------------------------------------------------------------------

CREATE_PERSON = """mutation($in: CreatePersonInput!) { createPerson(input: $in) {
  person { id } errors { code field } } }"""
OPEN_CASE = """mutation($in: OpenCaseInput!) { openCase(input: $in) {
  case { id } errors { code field } } }"""
RAISE_ALERT = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
  alert { id } errors { code field } } }"""
RECORD_CONSENT = """mutation($in: RecordConsentInput!) { recordConsent(input: $in) {
  consent { id } errors { code field } } }"""
REFER_CASE = """mutation($in: ReferCaseInput!) { referCase(input: $in) {
  referral { id } errors { code field } } }"""


async def ok(api: Any, user: str, query: str, variables: dict[str, Any], root: str) -> Any:
    """A mutation's payload, which must carry no errors."""
    payload = (await api.data(user, query, variables))[root]
    assert payload["errors"] == [], (user, root, payload["errors"])
    return payload


async def make_person(
    api: Any, user: str = "social.donghu", *, community: int = 1, **fields: Any
) -> str:
    """``createPerson`` as ``user``. ``fields`` are CreatePersonInput's (camelCase) over the
    defaults: a woman born in 1985 (an unknown birth date would count as a minor's) living in
    the grid of ``community`` (1: 东湖第2社区, where social.donghu works)."""
    person = {
        "name": "测试对象",
        "gender": "FEMALE",
        "birthDate": "1985-06-01",
        "residenceUnit": grid(api, community),
        **fields,
    }
    payload = await ok(api, user, CREATE_PERSON, {"in": person}, "createPerson")
    return str(payload["person"]["id"])


async def make_case(
    api: Any,
    subject: str,
    user: str = "social.donghu",
    *,
    risk: str = "LOW",
    channel: str = "WALK_IN",
    **fields: Any,
) -> str:
    """``openCase`` about ``subject`` (a global id) as ``user``; ``fields`` are OpenCaseInput's
    (``presentingProblem``, ``family``...)."""
    case = {"subject": subject, "sourceChannel": channel, "riskLevel": risk, **fields}
    payload = await ok(api, user, OPEN_CASE, {"in": case}, "openCase")
    return str(payload["case"]["id"])


async def make_alert(
    api: Any,
    user: str = "hotline",
    *,
    community: int = 0,
    risk: str = "LOW",
    channel: str = "HOTLINE_96525",
    **fields: Any,
) -> str:
    """``raiseAlert`` in the grid of ``community`` as ``user`` (the 96525 hotline by default);
    ``fields`` are RaiseAlertInput's (``summary``, ``person``, ``newPerson``...)."""
    alert = {"channel": channel, "riskLevel": risk, "areaUnit": grid(api, community), **fields}
    payload = await ok(api, user, RAISE_ALERT, {"in": alert}, "raiseAlert")
    return str(payload["alert"]["id"])


async def make_consent(
    api: Any,
    person: str,
    recipient: str,
    user: str = "social.donghu",
    *,
    purpose: str,
    scope: Iterable[str],
    given_by: str = "SUBJECT",
    **fields: Any,
) -> str:
    """``recordConsent``: ``person`` agrees to share ``scope`` with the ``recipient`` unit."""
    consent = {
        "person": person,
        "givenBy": given_by,
        "recipientUnit": recipient,
        "purpose": purpose,
        "scope": list(scope),
        **fields,
    }
    payload = await ok(api, user, RECORD_CONSENT, {"in": consent}, "recordConsent")
    return str(payload["consent"]["id"])


async def make_referral(
    api: Any,
    case: str,
    to_unit: str,
    consent: str,
    user: str = "social.donghu",
    *,
    purpose: str,
    shared: Iterable[str],
) -> str:
    """``referCase``: offer ``case`` to ``to_unit`` under ``consent``, sharing ``shared``."""
    referral = {
        "case": case,
        "toUnit": to_unit,
        "purpose": purpose,
        "consent": consent,
        "sharedClasses": list(shared),
    }
    payload = await ok(api, user, REFER_CASE, {"in": referral}, "referCase")
    return str(payload["referral"]["id"])


async def pass_deadline(api: Any, alert: str) -> None:
    """The alert's acknowledgement deadline passes (a minute ago), as if nobody acknowledged
    it in time: the next escalation run picks it up."""
    async with system_session(api.engine, reason="test: the deadline passes") as s:
        await s.execute(
            update(m.Alert)
            .where(m.Alert.id == number_of(alert))
            .values(ack_deadline=datetime.now(UTC) - timedelta(minutes=1))
        )
        await s.commit()


# --- through a system session ---------------------------------------------------------------


async def insert_unit(
    s: AsyncSession, *, name: str, kind: UnitKind, parent: m.Unit | None = None
) -> m.Unit:
    """An organisation unit under ``parent`` (its path set as the directory sets it)."""
    unit = m.Unit(name=name, kind=kind, parent_id=parent.id if parent else None)
    s.add(unit)
    await s.flush()
    unit.place_under(parent)
    await s.flush()
    return unit


async def insert_person(
    s: AsyncSession,
    keys: KeyRing,
    *,
    residence: int,
    school: int | None = None,
    gender: Gender = Gender.FEMALE,
    birth_year: int | None = None,
    categories: Iterable[Any] = (),
    sealed: Mapping[str, object],
) -> m.Person:
    """A person as an import registers one (a school's roster, an intake from another system):
    ``sealed`` are the plain values of the encrypted columns (name, id_number, phone,
    address, birth_date), sealed under the person's own data key."""
    person = m.Person(
        gender=gender,
        birth_year=birth_year,
        residence_unit_id=residence,
        school_unit_id=school,
        created_at=datetime.now(UTC),
    )
    person.set_categories(set(categories))
    s.add(person)
    await seal_row(s, keys, person, sealed)
    return person


async def insert_family(
    s: AsyncSession,
    keys: KeyRing,
    *,
    residence: int,
    members: Iterable[tuple[m.Person, str]] = (),
    circumstances: str | None = None,
) -> m.Family:
    """A family in ``residence`` with its members as (person, relationship) pairs."""
    family = m.Family(residence_unit_id=residence)
    s.add(family)
    await seal_row(s, keys, family, {"circumstances": circumstances} if circumstances else {})
    for person, relationship in members:
        s.add(m.FamilyMember(family_id=family.id, person_id=person.id, relationship=relationship))
    await s.flush()
    return family


async def insert_case(
    s: AsyncSession,
    keys: KeyRing,
    *,
    subject: int,
    area: int,
    lead: int,
    status: str = "active",
    risk: str = "low",
    channel: str = "walk_in",
    presenting_problem: str = "演示",
) -> m.Case:
    """A case in any state (``closed``, say, which the API reaches only through its workflow),
    led by the ``lead`` unit, with its presenting problem sealed."""
    case = m.Case(
        subject_id=subject,
        area_unit_id=area,
        source_channel=channel,
        risk_level=risk,
        status=status,
        lead_unit_id=lead,
    )
    s.add(case)
    await seal_row(s, keys, case, {"presenting_problem": presenting_problem})
    return case


async def insert_intervention(
    s: AsyncSession,
    keys: KeyRing,
    *,
    case: m.Case,
    unit: int,
    kind: str = "home_visit",
    notes: str = "入户走访",
) -> m.Intervention:
    """An intervention on ``case`` by ``unit``, its notes sealed under the subject's key."""
    intervention = m.Intervention(
        case_id=case.id, person_id=case.subject_id, kind=kind, unit_id=unit
    )
    s.add(intervention)
    await seal_row(s, keys, intervention, {"notes": notes})
    return intervention


async def insert_assessment(
    s: AsyncSession,
    keys: KeyRing,
    *,
    person: int,
    case: int | None,
    instrument: str,
    score: int,
    severity: str,
    answers: list[int],
) -> m.Assessment:
    """A scored assessment (as a counsellor's instrument records it), answers sealed."""
    assessment = m.Assessment(
        person_id=person, case_id=case, instrument=instrument, score=score, severity=severity
    )
    s.add(assessment)
    await seal_row(s, keys, assessment, {"answers": answers})
    return assessment


async def insert_consent(
    s: AsyncSession,
    *,
    person: int,
    recipient: int,
    purpose: str,
    scope: str,
    given_by: ConsentGiver = ConsentGiver.SUBJECT,
    withdrawn_at: datetime | None = None,
) -> m.Consent:
    """A consent in any state (already withdrawn, say); ``scope`` is comma-separated."""
    consent = m.Consent(
        person_id=person,
        given_by=given_by,
        recipient_unit_id=recipient,
        purpose=purpose,
        scope=scope,
        withdrawn_at=withdrawn_at,
    )
    s.add(consent)
    await s.flush()
    return consent


async def insert_referral(
    s: AsyncSession,
    *,
    case: int,
    person: int,
    from_unit: int,
    to_unit: int,
    consent: int,
    purpose: str,
    shared: str,
    status: ReferralStatus = ReferralStatus.ACCEPTED,
    expires_at: datetime | None = None,
) -> m.Referral:
    """A referral in any state (accepted without the offer step, expired...); ``shared`` is
    comma-separated field classes."""
    referral = m.Referral(
        case_id=case,
        person_id=person,
        from_unit_id=from_unit,
        to_unit_id=to_unit,
        purpose=purpose,
        shared_classes=shared,
        status=status,
        consent_id=consent,
        expires_at=expires_at,
    )
    s.add(referral)
    await s.flush()
    return referral
