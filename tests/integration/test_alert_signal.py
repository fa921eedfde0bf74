"""Alert routings across processes on PostgreSQL (issue 14, item 8): the routing transaction sends
``NOTIFY`` with the alert id only, on commit only; the feed wakes on it, catches a lost one with
its safety poll, and listens again after its connection is killed; escalation ticks of two
processes escalate each overdue alert exactly once (an advisory lock per tick).

The servers-as-subprocesses version of the cross-process push is in ``test_served_live.py``;
these drive the parts in process, against the suite's PostgreSQL demo district.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from api.alert_signal import CHANNEL
from api.jobs import ESCALATION_LOCK, escalate_overdue
from api.live import AlertFeed, Routed
from domain import models as m
from domain.alerts import AlertStatus
from domain.base import utcnow
from domain.cases import RiskLevel, SourceChannel
from domain.session import create_engine, system_session
from tests.conftest import Api

# Background feeds, NOTIFY on commit and concurrent ticks need real commits and connections of
# their own: each test runs on a private copy of the district (tests/conftest.py).
pytestmark = pytest.mark.own_database

RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) { alert { id } errors { code } } }"""
WAIT = 10.0
QUIET = 0.5
"""How long "nothing arrives" is watched for."""


def _postgres_only(api: Api) -> None:
    if api.backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY and advisory locks are PostgreSQL's; SQLite's feed polls")


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


async def _raise(api: Api, community: int = 2) -> int:
    data = await api.data(
        "hotline",
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "LOW",
                "areaUnit": gid("Unit", api.district.communities[community]["grid"]),
            }
        },
    )
    return int(base64.b64decode(data["raiseAlert"]["alert"]["id"]).decode().split(":")[1])


class Heard:
    """Notifications on the alert channel, heard on a connection of the test's own."""

    def __init__(self) -> None:
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.put_nowait(payload)

    async def next(self) -> str:
        async with asyncio.timeout(WAIT):
            return await self.payloads.get()

    async def nothing(self) -> None:
        await asyncio.sleep(QUIET)
        assert self.payloads.empty(), self.payloads.get_nowait()


@pytest.fixture
async def heard(api: Api) -> AsyncIterator[Heard]:
    _postgres_only(api)
    engine = create_engine(api.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    heard = Heard()
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.add_listener(CHANNEL, heard)
        yield heard
        await driver.remove_listener(CHANNEL, heard)
    await engine.dispose()


def _alert(api: Api) -> m.Alert:
    grid = api.district.communities[2]["grid"]
    return m.Alert(
        channel=SourceChannel.HOTLINE_96525,
        risk_level=RiskLevel.LOW,
        status=AlertStatus.OPEN,
        area_unit_id=grid,
        target_unit_id=grid,
        ack_deadline=utcnow() + timedelta(hours=72),
    )


async def test_the_routing_transaction_notifies_the_alert_id_and_only_on_commit(
    api: Api, heard: Heard
) -> None:
    # Raised through the API (a use case that knows nothing of notifications): its id, alone.
    alert_id = await _raise(api)
    assert await heard.next() == str(alert_id)

    async with system_session(api.engine, reason="test: a routing that rolls back") as s:
        s.add(_alert(api))
        await s.flush()  # NOTIFY sent inside the transaction ...
        await heard.nothing()  # ... and not delivered before it commits
        await s.rollback()
    await heard.nothing()  # ... nor ever, as it rolled back

    async with system_session(api.engine, reason="test: a routing that commits") as s:
        row = _alert(api)
        s.add(row)
        await s.commit()
    assert await heard.next() == str(row.id)

    # A change that does not route the alert (an acknowledgement) is not news; routing it again
    # (a new routed_at) is.
    async with system_session(api.engine, reason="test: acknowledge, then route again") as s:
        found = (await s.execute(select(m.Alert).where(m.Alert.id == row.id))).scalar_one()
        found.status = AlertStatus.ACKNOWLEDGED
        await s.commit()
        await heard.nothing()
        found.routed_at = utcnow()
        await s.commit()
    assert await heard.next() == str(row.id)


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {what} within {WAIT} s")


async def _listening(feed: AlertFeed) -> None:
    await _until(lambda: feed.listener is not None and feed.listener.listening, "listening")
    await asyncio.sleep(QUIET)  # and its first read done: what came before is not news


async def _delivered(queue: asyncio.Queue[list[Routed]], alert_id: int) -> None:
    async with asyncio.timeout(WAIT):
        while not any(r.alert_id == alert_id for r in await queue.get()):
            pass


async def test_a_notification_wakes_the_feed_long_before_its_poll(api: Api) -> None:
    _postgres_only(api)
    feed = AlertFeed(api.engine, every_seconds=60, safety_seconds=60)
    try:
        async with feed.subscribe() as queue:
            await _listening(feed)
            alert_id = await _raise(api)
            await _delivered(queue, alert_id)  # within WAIT: only a notification does that
    finally:
        await feed.aclose()


async def test_a_routing_without_a_notification_is_caught_by_the_safety_poll(api: Api) -> None:
    _postgres_only(api)
    alert_id = await _raise(api)
    feed = AlertFeed(api.engine, every_seconds=60, safety_seconds=0.3)
    try:
        async with feed.subscribe() as queue:
            await _listening(feed)
            async with system_session(api.engine, reason="test: a bulk routing, unannounced") as s:
                await s.execute(
                    update(m.Alert).where(m.Alert.id == alert_id).values(routed_at=utcnow())
                )
                await s.commit()
            await _delivered(queue, alert_id)
            assert feed.listener is not None and feed.listener.listening, "while listening"
    finally:
        await feed.aclose()


async def test_the_feed_listens_again_after_its_connection_is_killed(api: Api) -> None:
    _postgres_only(api)
    feed = AlertFeed(api.engine, every_seconds=60, safety_seconds=60)
    try:
        async with feed.subscribe() as queue:
            await _listening(feed)
            assert feed.listener is not None
            killed = feed.listener.pid
            async with system_session(api.engine, reason="test: the network drops") as s:
                await s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
                await s.commit()
            await _until(
                lambda: feed.listener is not None and feed.listener.pid not in (None, killed),
                "listening again",
            )
            alert_id = await _raise(api)
            await _delivered(queue, alert_id)  # woken again: the minute's poll is far off
    finally:
        await feed.aclose()
    assert feed.listener is None, "the listening connection closes with the feed"


async def _overdue(api: Api, count: int) -> dict[int, int]:
    """``count`` fresh alerts past their deadline: id → the unit they are addressed to."""
    ids = [await _raise(api, community=0) for _ in range(count)]  # owned by grid.donghu's grid
    async with system_session(api.engine, reason="test: the deadlines pass") as s:
        await s.execute(
            update(m.Alert)
            .where(m.Alert.id.in_(ids))
            .values(ack_deadline=utcnow() - timedelta(minutes=1))
        )
        await s.commit()
        rows = await s.execute(
            select(m.Alert.id, m.Alert.target_unit_id).where(m.Alert.id.in_(ids))
        )
        return {alert_id: target for alert_id, target in rows.all()}


async def _escalations(api: Api, before: dict[int, int]) -> dict[int, tuple[int, int, str]]:
    """Per alert: escalation write events, whether it moved to another unit, status."""
    async with system_session(api.engine, reason="test assertion") as s:
        now = dict(
            (
                await s.execute(
                    select(m.Alert.id, m.Alert.target_unit_id).where(m.Alert.id.in_(before))
                )
            ).all()
        )
        status = dict(
            (
                await s.execute(select(m.Alert.id, m.Alert.status).where(m.Alert.id.in_(before)))
            ).all()
        )
        events = dict(
            (
                await s.execute(
                    select(m.AccessEvent.entity_id, func.count())
                    .where(
                        m.AccessEvent.entity == "alert",
                        m.AccessEvent.entity_id.in_(before),
                        m.AccessEvent.reason == "escalate",
                    )
                    .group_by(m.AccessEvent.entity_id)
                )
            ).all()
        )
    return {
        alert_id: (events.get(alert_id, 0), int(now[alert_id] != target), str(status[alert_id]))
        for alert_id, target in before.items()
    }


async def test_two_processes_ticking_at_once_escalate_each_overdue_alert_once(api: Api) -> None:
    _postgres_only(api)
    before = await _overdue(api, 4)
    engines: list[AsyncEngine] = [create_engine(api.url), create_engine(api.url)]
    try:
        for _ in range(3):  # a few rounds of two ticks at once
            await asyncio.gather(*(escalate_overdue(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    once = (1, 1, "escalated")
    assert await _escalations(api, before) == dict.fromkeys(before, once)


async def test_a_tick_does_nothing_while_another_process_escalates(api: Api) -> None:
    _postgres_only(api)
    before = await _overdue(api, 1)
    other = create_engine(api.url)
    try:
        async with other.connect() as conn:  # another process, in the middle of its tick
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ESCALATION_LOCK})
            assert await escalate_overdue(api.engine) == 0
            assert await _escalations(api, before) == dict.fromkeys(before, (0, 0, "open"))
            await conn.rollback()  # its tick ends; the lock goes with its transaction
        assert await escalate_overdue(api.engine) >= 1
    finally:
        await other.dispose()
    assert await _escalations(api, before) == dict.fromkeys(before, (1, 1, "escalated"))
