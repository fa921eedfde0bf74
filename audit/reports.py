"""The yearly report on minors' personal information (未成年人个人信息保护合规审计).

The regulations on the online protection of minors (art. 37) require an annual compliance audit
of the processing of minors' personal information; this generates its evidence from the access
log for any period: accesses to minors' records by role, unit and purpose, break-glass uses,
referrals and exports, consents and withdrawals, and denied attempts. Counts only — the report
names no child.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.access_log import AccessEvent
from domain.persons import Person
from domain.units import Unit
from domain.values import could_be_under

PAGE = 5000


@dataclass
class MinorsReport:
    since: datetime
    until: datetime
    generated_at: datetime
    events: int = 0
    minors: set[int] = field(default_factory=set)
    by_role: Counter[str] = field(default_factory=Counter)
    by_unit: Counter[str] = field(default_factory=Counter)
    by_purpose: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    denied: int = 0
    break_glass: int = 0
    referrals: int = 0
    consents: int = 0
    exports: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "report": "minors_personal_information_compliance",
            "period": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "generated_at": self.generated_at.isoformat(),
            "access_events_about_minors": self.events,
            "distinct_minors": len(self.minors),
            "by_role": dict(self.by_role.most_common()),
            "by_unit": dict(self.by_unit.most_common()),
            "by_purpose": dict(self.by_purpose.most_common()),
            "by_kind": dict(self.by_kind.most_common()),
            "denied_attempts": self.denied,
            "break_glass_accesses": self.break_glass,
            "referral_writes": self.referrals,
            "consent_writes": self.consents,
            "exports": self.exports,
        }

    def as_html(self) -> str:
        data = self.as_json()

        def table(title: str, counts: dict[str, int]) -> str:
            rows = (
                "".join(
                    f"<tr><td>{html.escape(str(k))}</td><td>{v}</td></tr>"
                    for k, v in counts.items()
                )
                or "<tr><td colspan=2>—</td></tr>"
            )
            head = "<tr><th>项目</th><th>次数</th></tr>"
            return f"<h2>{html.escape(title)}</h2><table>{head}{rows}</table>"

        summary = {
            "涉及未成年人的访问事件": data["access_events_about_minors"],
            "涉及未成年人人数": data["distinct_minors"],
            "被拒绝的访问": data["denied_attempts"],
            "紧急访问（破窗）": data["break_glass_accesses"],
            "转介记录写入": data["referral_writes"],
            "知情同意记录写入（含撤回）": data["consent_writes"],
            "导出": data["exports"],
        }
        period = f"{data['period']['since']} — {data['period']['until']}"
        return (
            "<!doctype html><html lang=zh><meta charset=utf-8>"
            "<title>未成年人个人信息保护合规审计报告</title>"
            "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
            "table{border-collapse:collapse;margin-bottom:1.5em}"
            "td,th{border:1px solid #999;padding:.3em .8em;text-align:left}</style>"
            "<h1>未成年人个人信息保护合规审计报告</h1>"
            f"<p>统计期间：{html.escape(period)}<br>生成时间：{html.escape(data['generated_at'])}</p>"
            + table("概况", summary)
            + table("按角色", data["by_role"])
            + table("按单位", data["by_unit"])
            + table("按使用目的", data["by_purpose"])
            + table("按访问类型", data["by_kind"])
            + "<p>本报告依据访问日志生成，只含统计数，不含任何未成年人的身份信息。</p></html>"
        )


async def minors_report(
    session: AsyncSession, *, since: datetime, until: datetime, now: datetime
) -> MinorsReport:
    report = MinorsReport(since, until, now)
    units = dict((await session.execute(select(Unit.id, Unit.name))).all())
    births: dict[int, int | None] = {}
    after = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AccessEvent)
                    .where(
                        AccessEvent.seq > after,
                        AccessEvent.occurred_at >= since,
                        AccessEvent.occurred_at < until,
                        AccessEvent.person_id.is_not(None),
                    )
                    .order_by(AccessEvent.seq)
                    .limit(PAGE)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        missing = {e.person_id for e in rows if e.person_id is not None} - births.keys()
        if missing:
            found = await session.execute(
                select(Person.id, Person.birth_year).where(Person.id.in_(missing))
            )
            births.update(dict(found.all()))
            births.update({pid: None for pid in missing - births.keys()})
        for e in rows:
            # Only the birth year is in the clear: a person counts as a minor until the end of
            # the year they turn 18 (as the minors overlay decides); unknown years are left out.
            born = births.get(e.person_id or 0)
            if born is None or not could_be_under(born, e.occurred_at.date(), 18):
                continue
            _count(report, e, units)
        after = rows[-1].seq
    return report


def _count(report: MinorsReport, e: AccessEvent, units: dict[int, str]) -> None:
    report.events += 1
    if e.person_id is not None:
        report.minors.add(e.person_id)
    for role in filter(None, e.actor_roles.split(",")):
        report.by_role[role] += 1
    report.by_unit[units.get(e.actor_unit_id or 0, "—")] += 1
    report.by_purpose[e.purpose] += 1
    report.by_kind[e.kind] += 1
    report.denied += e.outcome == "denied"
    report.break_glass += bool(e.break_glass)
    report.referrals += e.entity == "referral" and e.kind == "write"
    report.consents += e.entity == "consent" and e.kind == "write"
    report.exports += e.kind == "export"
