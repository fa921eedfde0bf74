"""The demo district of PRODUCT.md §5, and synthetic persons at any scale.

Everything is generated: names by Faker's zh_CN locale, ID numbers with valid check digits and
birth dates, phone numbers in the 1xx range. Nothing here is a real person. The same seed gives
the same district.

Every community gets one record of each kind the privacy rules distinguish (adult, minor, minor
under 14 with a guardian, 失独 family with a linked volunteer, registered severe-mental-disorder
patient, high / medium / low-risk case, a case referred to the partner agency), so every demo
account has something to see and something it must not.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain import models as m
from domain.alerts import ACK_DEADLINES, AlertStatus
from domain.base import Base
from domain.cases import CaseStatus, RiskLevel, SourceChannel
from domain.consents import ConsentGiver
from domain.encryption import DataKey, new_data_key
from domain.families import MemberRelationship, SpecialFamilyType
from domain.interventions import InterventionKind
from domain.keys import KeyRing, ensure_version
from domain.persons import Gender, GuardianRelationship, PopulationCategory
from domain.referrals import ReferralStatus
from domain.routing import UnitNode, route
from domain.sealing import encrypted_columns, index_columns, seal
from domain.session import system_session
from domain.staff import Role
from domain.units import UnitKind
from domain.values import id_check_char

REGION_CODES = ("110105", "310104", "440305", "330106", "510107", "420106")
BATCH = 2000


class DemoExists(Exception):
    pass


@dataclass
class District:
    """Ids of the fixed units and accounts, for the generator and the tests."""

    units: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)
    communities: list[dict[str, int]] = field(default_factory=list)
    records: list[dict[str, int]] = field(default_factory=list)
    """Per community: record kind → id (see ``fixed_records``)."""
    nodes: dict[int, UnitNode] = field(default_factory=dict)
    """The unit tree as routing sees it (``domain.routing``)."""


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.today = date.today()
        self.now = datetime.now(UTC)
        self._seq = 0

    def birth(self, min_age: int, max_age: int) -> date:
        days = self.rng.randint(min_age * 365 + 1, max_age * 365 + 300)
        return self.today - timedelta(days=days)

    def id_number(self, born: date, gender: Gender) -> str:
        self._seq = (self._seq + 1) % 500
        seq = self._seq * 2 + (1 if gender is Gender.MALE else 0)
        body = f"{self.rng.choice(REGION_CODES)}{born:%Y%m%d}{seq:03d}"
        return body + id_check_char(body)

    def phone(self) -> str:
        return f"1{self.rng.choice('3456789')}{self.rng.randint(0, 999_999_999):09d}"

    def person(
        self,
        residence: int,
        *,
        min_age: int,
        max_age: int,
        school: int | None = None,
        categories: Sequence[PopulationCategory] = (),
    ) -> dict[str, Any]:
        gender = self.rng.choice((Gender.MALE, Gender.FEMALE))
        born = self.birth(min_age, max_age)
        name = self.fake.name_male() if gender is Gender.MALE else self.fake.name_female()
        return {
            "name": name,
            "gender": gender,
            "birth_date": born,
            "id_number": self.id_number(born, gender),
            "phone": self.phone(),
            "address": self.fake.street_address(),
            "residence_unit_id": residence,
            "school_unit_id": school,
            "created_at": self.now,
            "_categories": list(categories),
        }


# -- the fixed district -------------------------------------------------------------------------

ACCOUNTS: list[tuple[str, str, str, Role]] = [
    # username, display name, unit key, role
    ("admin", "系统管理员", "district", Role.ADMIN),
    ("auditor", "审计员", "district", Role.AUDITOR),
    ("leader", "区领导", "district", Role.LEADER),
    ("office", "联席办", "office", Role.OFFICE),
    ("grid.donghu", "东湖网格员", "grid:0", Role.GRID_WORKER),
    ("social.donghu", "东湖社工", "social_station", Role.SOCIAL_WORKER),
    ("teacher.school2", "第二中学心理老师", "school2", Role.SCHOOL_COUNSELLOR),
    ("counselor", "心理咨询师", "health_centre", Role.COUNSELLOR),
    ("psychiatrist", "精神科医生", "mental_health_centre", Role.PSYCHIATRIST),
    ("police.donghu", "东湖派出所民警", "police:donghu", Role.POLICE),
    ("zongzhi", "综治中心", "governance", Role.GOVERNANCE),
    ("civil", "民政局", "civil", Role.CIVIL_AFFAIRS),
    ("jisheng", "计生协会", "jisheng", Role.FAMILY_PLANNING),
    ("volunteer.li", "李志愿者", "volunteers", Role.VOLUNTEER),
    ("hotline", "96525热线", "hotline", Role.HOTLINE),
    ("fulian", "妇联", "fulian", Role.WOMENS_FEDERATION),
    ("canlian", "残联", "canlian", Role.DISABLED_FEDERATION),
    ("partner.chenguang", "晨光社工", "partner", Role.PARTNER),
    ("duty", "应急值班员", "governance", Role.DUTY_OFFICER),
]


async def _add_unit(
    s: AsyncSession, name: str, kind: UnitKind, parent: m.Unit | None, area: m.Unit | None = None
) -> m.Unit:
    unit = m.Unit(
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        area_unit_id=area.id if area else None,
    )
    s.add(unit)
    await s.flush()
    unit.place_under(parent)
    return unit


async def build_district(s: AsyncSession) -> District:
    d = District()
    u: dict[str, m.Unit] = {}
    district = u["district"] = await _add_unit(s, "示范区", UnitKind.DISTRICT, None)
    for key, name in (("donghu", "东湖街道"), ("xishan", "西山街道")):
        street = u[f"street:{key}"] = await _add_unit(s, name, UnitKind.STREET, district)
        for i in (1, 2):
            community = await _add_unit(s, f"{name[:2]}第{i}社区", UnitKind.COMMUNITY, street)
            grid = await _add_unit(s, f"{name[:2]}第{i}社区第一网格", UnitKind.GRID, community)
            u[f"community:{len(d.communities)}"] = community
            u[f"grid:{len(d.communities)}"] = grid
            d.communities.append({"community": community.id, "grid": grid.id, "street": street.id})
        u[f"police:{key}"] = await _add_unit(
            s, f"{name[:2]}派出所", UnitKind.POLICE_STATION, street, street
        )
    donghu = u["street:donghu"]
    u["school1"] = await _add_unit(s, "示范区实验小学", UnitKind.SCHOOL, donghu, donghu)
    u["school2"] = await _add_unit(s, "示范区第二中学", UnitKind.SCHOOL, donghu, donghu)
    xishan = u["street:xishan"]
    u["health_centre:xishan"] = await _add_unit(
        s, "西山社区卫生服务中心", UnitKind.HEALTH_CENTRE, xishan, xishan
    )
    u["health_centre"] = await _add_unit(
        s, "东湖社区卫生服务中心", UnitKind.HEALTH_CENTRE, donghu, donghu
    )
    u["volunteers"] = await _add_unit(
        s, "东湖第1社区志愿者服务队", UnitKind.BUREAU, u["community:0"]
    )
    u["social_station"] = await _add_unit(s, "东湖街道社工站", UnitKind.BUREAU, donghu, donghu)
    for key, name, kind in (
        ("mental_health_centre", "示范区精神卫生中心", UnitKind.MENTAL_HEALTH_CENTRE),
        ("governance", "示范区综治中心", UnitKind.GOVERNANCE_CENTRE),
        ("civil", "示范区民政局", UnitKind.CIVIL_AFFAIRS),
        ("fulian", "示范区妇联", UnitKind.WOMENS_FEDERATION),
        ("canlian", "示范区残联", UnitKind.DISABLED_FEDERATION),
        ("jisheng", "示范区计生协会", UnitKind.FAMILY_PLANNING),
        ("hotline", "96525心理援助热线中心", UnitKind.HOTLINE_CENTRE),
        ("office", "社会心理服务体系建设联席会议办公室", UnitKind.JOINT_OFFICE),
        ("justice", "示范区司法局", UnitKind.BUREAU),
        ("education", "示范区教育局", UnitKind.BUREAU),
    ):
        u[key] = await _add_unit(s, name, kind, district, district)
    u["partner"] = await _add_unit(s, "晨光社会工作服务中心", UnitKind.PARTNER_AGENCY, district)
    await s.flush()
    d.units = {k: v.id for k, v in u.items()}
    d.nodes = {v.id: UnitNode(v.id, v.kind, v.path, v.area_unit_id) for v in u.values()}
    for username, display, unit_key, role in ACCOUNTS:
        staff = m.Staff(
            username=username,
            display_name=display,
            unit_id=d.units[unit_key],
            role_rows=[m.StaffRole(role=role)],
        )
        s.add(staff)
        await s.flush()
        d.staff[username] = staff.id
    return d


async def _insert(s: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> list[int]:
    """Multi-row INSERT ... RETURNING id, in order; a few statements per thousand rows.

    SQLite cannot promise RETURNING in parameter order, so SQLAlchemy would send one statement
    per row there (twice the demo's time); the ids are numbered here instead, after the
    current maximum (the demo holds the write transaction by then)."""
    (key,) = model.__mapper__.primary_key  # the integer id of every table the demo fills
    if s.get_bind().dialect.name == "sqlite":
        top = (await s.execute(select(func.coalesce(func.max(key), 0)))).scalar_one()
        numbered = [{**row, "id": top + n} for n, row in enumerate(rows, start=1)]
        for start in range(0, len(numbered), BATCH):
            await s.execute(insert(model), numbered[start : start + BATCH])
        return [row["id"] for row in numbered]
    ids: list[int] = []
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        result = await s.execute(
            insert(model).returning(key, sort_by_parameter_order=True),
            chunk,
        )
        ids.extend(r[0] for r in result)
    return ids


@dataclass
class Batch:
    """Rows for one insert round; references between them are resolved by position."""

    persons: list[dict[str, Any]] = field(default_factory=list)
    families: list[dict[str, Any]] = field(default_factory=list)
    members: list[tuple[int, int, MemberRelationship]] = field(default_factory=list)
    guardians: list[tuple[int, int]] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)  # family index, staff id
    cases: list[dict[str, Any]] = field(default_factory=list)  # subject index in "_subject"
    co_units: list[tuple[int, int]] = field(default_factory=list)  # case index, unit id
    assignments: list[tuple[int, int]] = field(default_factory=list)  # case index, staff id
    interventions: list[dict[str, Any]] = field(default_factory=list)  # case index in "_case"
    alerts: list[dict[str, Any]] = field(default_factory=list)
    referrals: list[dict[str, Any]] = field(
        default_factory=list
    )  # "_case"; "_consent" → person idx
    tags: list[tuple[int, str, str, int]] = field(default_factory=list)
    """(community index, kind, table, batch position) of the fixed records."""

    def person(self, row: dict[str, Any]) -> int:
        self.persons.append(row)
        return len(self.persons) - 1

    def family(self, row: dict[str, Any]) -> int:
        self.families.append(row)
        return len(self.families) - 1


def routing(d: District, c: dict[str, int], risk: RiskLevel) -> tuple[int, list[int]]:
    """Lead and co-handling units by tier, by the service's own rule (``domain.routing``)."""
    team = route(d.nodes[c["grid"]], list(d.nodes.values()), risk)
    return team.lead, list(team.co_units)


def _case(
    g: Generator,
    subject: int,
    area: int,
    risk: RiskLevel,
    lead: int,
    status: CaseStatus = CaseStatus.ACTIVE,
    problem: str = "情绪低落，睡眠差",
) -> dict[str, Any]:
    return {
        "_subject": subject,
        "area_unit_id": area,
        "source_channel": g.rng.choice(list(SourceChannel)),
        "risk_level": risk,
        "status": status,
        "lead_unit_id": lead,
        "presenting_problem": f"{problem}（演示数据{g.rng.randint(1000, 9999)}）",
        "support_plan": "每两周随访一次",
        "diagnosis": None,
        "opened_at": g.now - timedelta(days=g.rng.randint(1, 400)),
    }


def fixed_records(g: Generator, d: District) -> Batch:
    """One of each record kind per community, wired to the demo accounts.

    Each record is tagged (``Batch.tags``) with its kind, so tests and tools can find "the minor
    under 14 of community 0" without guessing. Persons: adult, minor, child_u14, guardian,
    shidu_member, shidu_spouse, high_subject, medium_subject, low_income, smd, referred_subject,
    emergency_subject; family: shidu_family; cases: high_case, medium_case, low_case, smd_case,
    referred_case, emergency_case (a medium case nobody is assigned to, for break-glass).
    """
    b = Batch()
    cat = PopulationCategory
    for index, c in enumerate(d.communities):
        street_key = "donghu" if index < 2 else "xishan"
        grid = c["grid"]
        school2 = d.units["school2"] if street_key == "donghu" else None

        def person(kind: str, lo: int, hi: int, **kw: Any) -> int:
            i = b.person(g.person(grid, min_age=lo, max_age=hi, **kw))  # noqa: B023
            b.tags.append((index, kind, "person", i))  # noqa: B023
            return i

        def case(kind: str, subject: int, risk: RiskLevel, lead: int, **kw: Any) -> int:
            b.cases.append(_case(g, subject, grid, risk, lead, **kw))  # noqa: B023
            ci = len(b.cases) - 1
            b.tags.append((index, kind, "case", ci))  # noqa: B023
            return ci

        person("adult", 25, 55)
        person("minor", 15, 17, school=school2, categories=[cat.STUDENT])
        child = person(
            "child_u14",
            8,
            12,
            school=d.units["school1"],
            categories=[cat.STUDENT, cat.LEFT_BEHIND_CHILD],
        )
        guardian = person("guardian", 60, 70, categories=[cat.ELDERLY_ALONE])
        b.guardians.append((child, guardian))
        # 失独 family: two bereaved parents, a linked volunteer, the family-planning association.
        f = b.family(
            {
                "residence_unit_id": grid,
                "special_type": SpecialFamilyType.BEREAVED_ONLY_CHILD,
                "circumstances": "独生子女因病去世，夫妻二人独居（演示数据）",
                "created_at": g.now,
            }
        )
        b.tags.append((index, "shidu_family", "family", f))
        for kind, rel in (
            ("shidu_member", MemberRelationship.HEAD),
            ("shidu_spouse", MemberRelationship.SPOUSE),
        ):
            p = person(kind, 58, 72, categories=[cat.BEREAVED_ONLY_CHILD])
            b.members.append((f, p, rel))
        b.links.append((f, d.staff["volunteer.li"]))
        visit = _intervention(g, -1, d.units["jisheng"], InterventionKind.CONDOLENCE_VISIT)
        b.interventions.append({**visit, "_case": None, "_family": f})
        # Cases by tier (seed 001 routing), a registered severe-mental-disorder patient, a case
        # referred to the partner agency, and one nobody is assigned to (for break-glass).
        high = person("high_subject", 14, 16, school=school2, categories=[cat.STUDENT])
        medium = person("medium_subject", 25, 60)
        low = person("low_income", 40, 65, categories=[cat.LOW_INCOME])
        for kind, subject, risk in (
            ("high_case", high, RiskLevel.HIGH),
            ("medium_case", medium, RiskLevel.MEDIUM),
            ("low_case", low, RiskLevel.LOW),
        ):
            lead, co = routing(d, c, risk)
            ci = case(kind, subject, risk, lead)
            b.co_units += [(ci, u) for u in co]
            if risk is RiskLevel.LOW and index == 0:
                b.assignments.append((ci, d.staff["grid.donghu"]))
            if risk is RiskLevel.MEDIUM and street_key == "donghu":
                b.assignments.append((ci, d.staff["social.donghu"]))
            if risk is RiskLevel.HIGH and street_key == "donghu":
                b.assignments += [(ci, d.staff["teacher.school2"]), (ci, d.staff["counselor"])]
            b.interventions.append(_intervention(g, ci, lead, InterventionKind.HOME_VISIT))
        smd = person("smd", 30, 60, categories=[cat.SEVERE_MENTAL_DISORDER])
        ci = case(
            "smd_case",
            smd,
            RiskLevel.MEDIUM,
            d.units["mental_health_centre"],
            problem="病情稳定，规律服药",
        )
        b.cases[ci]["diagnosis"] = "F20 精神分裂症（演示数据）"
        b.assignments.append((ci, d.staff["psychiatrist"]))
        referred = person("referred_subject", 20, 50)
        lead, _ = routing(d, c, RiskLevel.LOW)
        ci = case("referred_case", referred, RiskLevel.LOW, lead, problem="婚姻家庭压力")
        b.referrals.append(
            {
                "_case": ci,
                "_consent": referred,
                "from_unit_id": lead,
                "to_unit_id": d.units["partner"],
                "purpose": "心理咨询服务",
                "shared_classes": "basic,case_admin,narrative",
                "status": ReferralStatus.ACCEPTED,
            }
        )
        emergency = person("emergency_subject", 25, 60)
        case(
            "emergency_case",
            emergency,
            RiskLevel.MEDIUM,
            d.units["governance"],
            problem="家属报告情绪激动",
        )
        b.alerts.append(
            {
                "_person": high,
                "channel": SourceChannel.HOTLINE_96525,
                "risk_level": RiskLevel.HIGH,
                "summary": "来电反映学生有自伤念头（演示数据）",
                "area_unit_id": grid,
                "target_unit_id": grid,
                "status": AlertStatus.OPEN,
                "created_by_staff_id": d.staff["hotline"],
            }
        )
    return b


def _intervention(
    g: Generator, case_index: int, unit: int, kind: InterventionKind
) -> dict[str, Any]:
    return {
        "_case": case_index,
        "kind": kind,
        "unit_id": unit,
        "staff_id": None,
        "performed_at": g.now - timedelta(days=g.rng.randint(0, 60)),
        "notes": f"入户走访，情绪较前平稳（演示数据{g.rng.randint(1000, 9999)}）",
        "outcome": "继续随访",
    }


def synthetic(g: Generator, d: District, count: int) -> Batch:
    """``count`` more persons with families, cases and interventions in rough real proportions:
    ~18 % minors, ~12 % over 60, ~1 % of households 失独, ~6 % of persons with a case
    (10 % high, 30 % medium, 60 % low risk), 1–3 interventions per case."""
    b = Batch()
    rng = g.rng
    while len(b.persons) < count:
        c = rng.choice(d.communities)
        street_key = "donghu" if c["street"] == d.units["street:donghu"] else "xishan"
        grid = c["grid"]
        shidu = rng.random() < 0.01
        f = b.family(
            {
                "residence_unit_id": grid,
                "created_at": g.now,
                "special_type": SpecialFamilyType.BEREAVED_ONLY_CHILD if shidu else None,
                "circumstances": "失独家庭（演示数据）" if shidu else None,
            }
        )
        adults = 1 if shidu else rng.choice((1, 2, 2, 2))
        for i in range(adults):
            cats = [PopulationCategory.BEREAVED_ONLY_CHILD] if shidu else _adult_categories(rng)
            p = b.person(
                g.person(
                    grid, min_age=60 if shidu else 22, max_age=85 if shidu else 75, categories=cats
                )
            )
            b.members.append(
                (f, p, MemberRelationship.HEAD if i == 0 else MemberRelationship.SPOUSE)
            )
            _maybe_case(g, b, d, c, street_key, p)
        if not shidu:
            for _ in range(rng.choice((0, 1, 1, 2))):
                minor = rng.random() < 0.55
                school = rng.choice((d.units["school1"], d.units["school2"])) if minor else None
                p = b.person(
                    g.person(
                        grid,
                        min_age=6 if minor else 18,
                        max_age=17 if minor else 30,
                        school=school,
                        categories=[PopulationCategory.STUDENT] if minor else [],
                    )
                )
                b.members.append((f, p, MemberRelationship.CHILD))
                _maybe_case(g, b, d, c, street_key, p)
    return b


def _adult_categories(rng: random.Random) -> list[PopulationCategory]:
    roll = rng.random()
    if roll < 0.03:
        return [PopulationCategory.LOW_INCOME]
    if roll < 0.04:
        return [PopulationCategory.SEVERE_MENTAL_DISORDER]
    if roll < 0.05:
        return [PopulationCategory.DISABLED]
    return []


def _maybe_case(
    g: Generator, b: Batch, d: District, c: dict[str, int], street_key: str, person: int
) -> None:
    if g.rng.random() >= 0.06:
        return
    risk = g.rng.choices((RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW), (1, 3, 6))[0]
    lead, co = routing(d, c, risk)
    status = g.rng.choice(
        (CaseStatus.ACTIVE, CaseStatus.ACTIVE, CaseStatus.MONITORING, CaseStatus.ASSESSING)
    )
    b.cases.append(_case(g, person, c["grid"], risk, lead, status))
    ci = len(b.cases) - 1
    b.co_units += [(ci, u) for u in co]
    for _ in range(g.rng.randint(1, 3)):
        b.interventions.append(_intervention(g, ci, lead, g.rng.choice(list(InterventionKind))))


async def _new_keys(s: AsyncSession, keys: KeyRing, owners: list[str]) -> dict[str, DataKey]:
    """A data key per owner, a few statements per thousand: the records are inserted, wrapped
    once their ids exist (the id is in the wrapping's associated data), and updated."""
    await ensure_version(s, keys)  # the version and its check value, before wrapping under it
    now = datetime.now(UTC)
    dek_ids = await _insert(
        s,
        m.DataKeyRecord,
        [
            {
                "owner": o,
                "suite": int(keys.suite),
                "kek_version": keys.current.version,
                "wrapped": b"",
                "created_at": now,
            }
            for o in owners
        ],
    )
    made: dict[str, DataKey] = {}
    wrapped = []
    for owner, dek_id in zip(owners, dek_ids, strict=True):
        key = made[owner] = new_data_key(dek_id, keys.suite)
        wrapped.append({"id": dek_id, "wrapped": keys.current.wrap(key, owner)})
    for start in range(0, len(wrapped), BATCH):
        await s.execute(update(m.DataKeyRecord), wrapped[start : start + BATCH])
    return made


async def _seal_rows(
    s: AsyncSession,
    keys: KeyRing,
    rows: list[Any],
    plain: list[dict[str, Any]],
    deks: dict[str, DataKey],
) -> None:
    """Seal each row's plain values under its owner's key (``rows`` are transient instances
    carrying the id and the owner columns), then write the ciphertexts in bulk updates."""
    if not rows:
        return
    model = type(rows[0])
    indexes = index_columns(model)
    sealed = []
    for row, values in zip(rows, plain, strict=True):
        seal(row, deks[row.key_owner], values, index_key=keys.index_key, suite=keys.suite)
        written = {a: getattr(row, a) for a in values}
        written |= {indexes[a]: getattr(row, indexes[a]) for a in values if a in indexes}
        sealed.append({"id": row.id} | written)
    for start in range(0, len(sealed), BATCH):
        await s.execute(update(model), sealed[start : start + BATCH])


def _take(rows: list[dict[str, Any]], model: type) -> list[dict[str, Any]]:
    """Pop the plain values of ``model``'s encrypted columns out of rows about to be inserted."""
    return [{c: row.pop(c, None) for c in encrypted_columns(model) if c in row} for row in rows]


async def write_batch(
    s: AsyncSession, g: Generator, b: Batch, keys: KeyRing
) -> list[dict[str, int]]:
    """Insert a batch; returns the ids of its tagged records, per community."""
    categories = [p.pop("_categories") for p in b.persons]
    for p in b.persons:
        p["birth_year"] = p["birth_date"].year
    plain = _take(b.persons, m.Person)
    person_ids = await _insert(s, m.Person, b.persons)
    deks = await _new_keys(s, keys, [f"person:{pid}" for pid in person_ids])
    await _seal_rows(s, keys, [m.Person(id=pid) for pid in person_ids], plain, deks)
    pairs = zip(person_ids, categories, strict=True)
    cat_rows = [{"person_id": pid, "category": c} for pid, cats in pairs for c in cats]
    if cat_rows:
        await s.execute(insert(m.PersonCategory), cat_rows)
    family_text = _take(b.families, m.Family)
    family_ids = await _insert(s, m.Family, b.families) if b.families else []
    deks |= await _new_keys(s, keys, [f"family:{fid}" for fid in family_ids])
    await _seal_rows(s, keys, [m.Family(id=fid) for fid in family_ids], family_text, deks)
    if b.members:
        await s.execute(
            insert(m.FamilyMember),
            [
                {"family_id": family_ids[f], "person_id": person_ids[p], "relationship": r}
                for f, p, r in b.members
            ],
        )
    if b.guardians:
        await s.execute(
            insert(m.Guardianship),
            [
                {
                    "ward_id": person_ids[w],
                    "guardian_id": person_ids[gd],
                    "relationship": GuardianRelationship.GRANDPARENT,
                }
                for w, gd in b.guardians
            ],
        )
    if b.links:
        await s.execute(
            insert(m.VolunteerLink),
            [{"family_id": family_ids[f], "staff_id": st, "active": True} for f, st in b.links],
        )
    for row in b.cases:
        row["subject_id"] = person_ids[row.pop("_subject")]
    case_text = _take(b.cases, m.Case)
    case_ids = await _insert(s, m.Case, b.cases) if b.cases else []
    await _seal_rows(
        s,
        keys,
        [m.Case(id=c, subject_id=r["subject_id"]) for c, r in zip(case_ids, b.cases, strict=True)],
        case_text,
        deks,
    )
    if b.co_units:
        await s.execute(
            insert(m.CaseCoUnit), [{"case_id": case_ids[ci], "unit_id": u} for ci, u in b.co_units]
        )
    if b.assignments:
        await s.execute(
            insert(m.CaseAssignment),
            [
                {"case_id": case_ids[ci], "staff_id": st, "assigned_at": g.now}
                for ci, st in b.assignments
            ],
        )
    for row in b.interventions:
        case_index = row.pop("_case")
        family_index = row.pop("_family", None)
        row["case_id"] = None if case_index is None else case_ids[case_index]
        row["person_id"] = None if case_index is None else b.cases[case_index]["subject_id"]
        row["family_id"] = None if family_index is None else family_ids[family_index]
    notes = _take(b.interventions, m.Intervention)
    intervention_ids = await _insert(s, m.Intervention, b.interventions) if b.interventions else []
    await _seal_rows(
        s,
        keys,
        [
            m.Intervention(id=i, person_id=r["person_id"], family_id=r["family_id"])
            for i, r in zip(intervention_ids, b.interventions, strict=True)
        ],
        notes,
        deks,
    )
    for row in b.referrals:
        case_index, consenting = row.pop("_case"), row.pop("_consent")
        consent = m.Consent(
            person_id=person_ids[consenting],
            given_by=ConsentGiver.SUBJECT,
            recipient_unit_id=row["to_unit_id"],
            purpose=row["purpose"],
            scope=row["shared_classes"],
            given_at=g.now,
        )
        s.add(consent)
        await s.flush()
        s.add(
            m.Referral(
                case_id=case_ids[case_index],
                person_id=b.cases[case_index]["subject_id"],
                consent_id=consent.id,
                created_at=g.now,
                responded_at=g.now,
                **row,
            )
        )
    summaries = _take(b.alerts, m.Alert)
    alerts = [
        m.Alert(
            person_id=person_ids[row.pop("_person")],
            raised_at=g.now,
            routed_at=g.now,
            ack_deadline=g.now + ACK_DEADLINES[row["risk_level"]],
            **row,
        )
        for row in b.alerts
    ]
    s.add_all(alerts)
    await s.flush()
    for alert, summary in zip(alerts, summaries, strict=True):
        seal(alert, deks[alert.key_owner], summary, index_key=keys.index_key, suite=keys.suite)
    await s.flush()
    ids = {"person": person_ids, "family": family_ids, "case": case_ids}
    records: list[dict[str, int]] = []
    for community, kind, table, position in b.tags:
        while len(records) <= community:
            records.append({})
        records[community][kind] = ids[table][position]
    return records


def chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size


async def load_demo(
    engine: AsyncEngine,
    *,
    persons: int = 0,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
    keys: KeyRing,
) -> District:
    """Create the district (refuses if one exists) and ``persons`` synthetic persons."""
    g = Generator(seed)
    async with system_session(engine, reason="demo data load") as s:
        if (await s.execute(select(func.count()).select_from(m.Unit))).scalar_one():
            raise DemoExists(
                "the database already has units; demo data loads into an empty database"
            )
        d = await build_district(s)
        d.records = await write_batch(s, g, fixed_records(g, d), keys)
        await s.commit()
        for size in chunks(persons, 10_000):
            await write_batch(s, g, synthetic(g, d, size), keys)
            await s.commit()
            if progress:
                progress(size)
    await refresh_statistics(engine)
    return d


async def refresh_statistics(engine: AsyncEngine) -> None:
    """Planner statistics after a bulk load: without them PostgreSQL guessed a sequential scan
    for blind-index lookups at 100k persons (docs/performance.md). On PostgreSQL the load is
    also vacuumed, which marks its pages all-visible so index-only scans need not visit the
    table (before it, one scope check fetched 10,000 heap tuples at 100k persons)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM (ANALYZE)"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


async def district_ids(engine: AsyncEngine) -> District:
    """Look up the fixed accounts of an existing demo district (for tests and tools)."""
    d = District()
    async with system_session(engine, reason="demo lookup") as s:
        for sid, username in (await s.execute(select(m.Staff.id, m.Staff.username))).all():
            d.staff[username] = sid
    return d
