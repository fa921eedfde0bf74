"""Live alerts over graphql-transport-ws: pushed to those who may see them, filtered by the same
privacy engine, logged like reads; escalations pushed too; nothing but subscriptions on the
socket; no connection without a valid staff token.

The socket is served by a second app on the same database (as a second server process would be),
driven by Starlette's test client in its own thread; those tests run on a database of their own
(``own_database``), where what the test raises is committed for the server to see.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.jobs import escalate_overdue
from domain import models as m
from domain.base import utcnow
from domain.session import system_session
from tests import observability
from tests.builders import gid, make_alert, number_of, pass_deadline
from tests.conftest import Api

PROTOCOL = ["graphql-transport-ws"]
SUBSCRIBE = """subscription Live { alertEvents { kind alert { id riskLevel summary status
  targetUnit { id } redactedFields } } }"""
RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) { alert { id } errors { code } } }"""


@pytest.fixture
def server(api: Api) -> Iterator[TestClient]:
    settings = api.app.state.settings
    app = create_app(
        type(settings)(
            database_url=api.url,
            key_dir=settings.key_dir,
            scheduler_seconds=0,
            alert_feed_seconds=0.05,
        ),
        # The suite's collector, without its shutdown: this app's lifespan ends with the test.
        telemetry=replace(observability.TELEMETRY, shutdowns=[]),
    )
    with TestClient(app) as client:
        yield client


def _connect(server: TestClient, api: Api, user: str, stack: ExitStack) -> WebSocketTestSession:
    socket = stack.enter_context(server.websocket_connect("/graphql", subprotocols=PROTOCOL))
    socket.send_json(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token(user)}"}}
    )
    assert socket.receive_json()["type"] == "connection_ack"
    socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
    return socket


async def _next(socket: WebSocketTestSession) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message: dict[str, Any] = await asyncio.to_thread(socket.receive_json)
    return message


async def _event_for(socket: WebSocketTestSession, alert_id: str) -> dict[str, Any]:
    """The next event about ``alert_id`` (other tests' alerts may arrive first)."""
    for _ in range(50):
        message = await _next(socket)
        assert message["type"] == "next", message
        event: dict[str, Any] = message["payload"]["data"]["alertEvents"]
        if event["alert"]["id"] == alert_id:
            return event
    raise AssertionError("no event for the alert")


async def _settle() -> None:
    """Let the feed poll at least once after subscribing (its watermark starts then)."""
    await asyncio.sleep(0.3)


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
async def test_new_and_escalated_alerts_reach_those_who_may_see_them(
    api: Api, server: TestClient
) -> None:
    with ExitStack() as stack:
        await _new_and_escalated(api, server, stack)


async def _new_and_escalated(api: Api, server: TestClient, stack: ExitStack) -> None:
    grid = _connect(server, api, "grid.donghu", stack)
    governance = _connect(server, api, "zongzhi", stack)
    volunteer = _connect(server, api, "volunteer.li", stack)
    await _settle()
    alert_id = await make_alert(api, summary="来电者称独居老人近一周闭门不出")

    event = await _event_for(grid, alert_id)
    assert event["kind"] == "RAISED"
    assert event["alert"]["summary"].startswith("来电者"), "the target team reads the narrative"

    # The governance centre sees the jurisdiction's alerts, but not their narrative.
    to_governance = await _event_for(governance, alert_id)
    assert to_governance["alert"]["summary"] is None
    assert "summary" in to_governance["alert"]["redactedFields"]

    # Escalation (nobody acknowledged in time): pushed again, to whoever may see it now.
    number = number_of(alert_id)
    await pass_deadline(api, alert_id)
    assert await escalate_overdue(api.engine) >= 1
    escalated = await _event_for(governance, alert_id)
    assert escalated["kind"] == "ESCALATED" and escalated["alert"]["status"] == "ESCALATED"

    # The volunteer has no grant on alerts: nothing was sent to them.
    volunteer.send_json({"id": "p", "type": "ping"})
    assert (await _next(volunteer))["type"] == "pong"

    # Each delivery is in the access log, with the subscriber as the actor.
    async with system_session(api.engine, reason="test assertion") as s:
        actors = set(
            (
                await s.execute(
                    select(m.AccessEvent.actor_username).where(
                        m.AccessEvent.entity == "alert",
                        m.AccessEvent.entity_id == number,
                        m.AccessEvent.kind == "read",
                        m.AccessEvent.operation == "Live",
                    )
                )
            ).scalars()
        )
    assert {"grid.donghu", "zongzhi"} <= actors and "volunteer.li" not in actors


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
async def test_the_socket_runs_subscriptions_only(api: Api, server: TestClient) -> None:
    with server.websocket_connect("/graphql", subprotocols=PROTOCOL) as socket:
        socket.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {api.token('admin')}"},
            }
        )
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json(
            {
                "id": "q",
                "type": "subscribe",
                "payload": {"query": "{ persons(first: 1) { totalCount } }"},
            }
        )
        reply = await _next(socket)
        assert reply["type"] == "next"
        assert reply["payload"]["data"] is None
        assert reply["payload"]["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
@pytest.mark.parametrize("payload", [{}, {"Authorization": "Bearer not-a-token"}])
def test_no_connection_without_a_valid_token(
    api: Api, server: TestClient, payload: dict[str, str]
) -> None:
    def refused() -> int:
        points = observability.metric_points("xinqiao.auth.token_rejections")
        return sum(int(p.value) for _, p in points)  # type: ignore[attr-defined]

    before = refused()
    with server.websocket_connect("/graphql", subprotocols=PROTOCOL) as socket:
        socket.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4403
    assert refused() == before + 1, "counted as a refused token over HTTP would be"


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
async def test_a_revoked_token_stops_the_stream(
    api: Api, server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import live

    monkeypatch.setattr(live, "RECHECK", 0.0)
    token = api.token("zongzhi")
    with server.websocket_connect("/graphql", subprotocols=PROTOCOL) as socket:
        socket.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        await _settle()
        claims = api.app.state.tokens.verify(token)
        async with system_session(api.engine, reason="test: sign-out revokes the token") as s:
            s.add(
                m.RevokedAccessToken(
                    jti=claims.token_id, expires_at=utcnow() + timedelta(minutes=15)
                )
            )
            await s.commit()
        await api.data(
            "hotline",
            RAISE,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "LOW",
                    "areaUnit": gid("Unit", api.district.communities[0]["grid"]),
                }
            },
        )
        message = await _next(socket)
        assert message["type"] == "next" and message["payload"]["data"] is None
        assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_feed_delivers_each_routing_once(api: Api) -> None:
    from api.live import AlertFeed

    feed = AlertFeed(api.engine, 60)
    feed._watermark = utcnow() - timedelta(minutes=1)
    await api.data(
        "hotline",
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "LOW",
                "areaUnit": gid("Unit", api.district.communities[2]["grid"]),
            }
        },
    )
    first = await feed.poll()
    assert first, "the new alert is read"
    assert await feed.poll() == [] and await feed.poll() == [], "and never again"


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
def test_where_staff_run_only_registered_operations_so_do_subscriptions(api: Api) -> None:
    settings = api.app.state.settings
    app = create_app(
        type(settings)(
            database_url=api.url, key_dir=settings.key_dir, scheduler_seconds=0, staff_adhoc=False
        )
    )
    with (
        TestClient(app) as client,
        client.websocket_connect("/graphql", subprotocols=PROTOCOL) as socket,
    ):
        socket.send_json(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {api.token('zongzhi')}"},
            }
        )
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
        refused = socket.receive_json()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


# The socket is served from Starlette's test client: another thread, event loop and connection.
@pytest.mark.own_database
async def test_no_live_message_leaves_when_the_log_cannot_be_written(
    api: Api, server: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.log import RequestAccessLog

    original = RequestAccessLog.flush

    async def broken_for_deliveries(self: RequestAccessLog, session: Any) -> int:
        if self.operation == "Live":
            raise RuntimeError("disk full")
        return await original(self, session)

    monkeypatch.setattr(RequestAccessLog, "flush", broken_for_deliveries)
    with ExitStack() as stack:
        socket = _connect(server, api, "grid.donghu", stack)
        await _settle()
        await api.data(
            "hotline",
            RAISE,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "LOW",
                    "areaUnit": gid("Unit", api.district.communities[0]["grid"]),
                    "summary": "日志不可写时的测试预警",
                }
            },
        )
        message = await _next(socket)
        assert message["type"] == "next" and message["payload"]["data"] is None
        assert message["payload"]["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert "日志不可写" not in str(message) and "disk full" not in str(message)


# The feed polls in a task of its own while the test raises an alert: two statements at once.
@pytest.mark.own_database
async def test_the_feed_survives_a_quick_resubscribe_and_stops_cleanly(api: Api) -> None:
    """The last subscriber leaving asks the feed to stop between polls (a cancel in the middle
    of a query could hang the connection's teardown); a subscriber arriving meanwhile gets a
    fresh feed that still delivers, and shutdown waits for every feed task."""
    from api.live import AlertFeed

    def feed_tasks() -> list[asyncio.Task[Any]]:
        return [
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__qualname__ == "AlertFeed._run"  # type: ignore[union-attr]
        ]

    feed = AlertFeed(api.engine, 0.02)
    async with feed.subscribe():
        await asyncio.sleep(0.05)
    async with feed.subscribe() as queue:  # the first feed may still be in its last poll
        await asyncio.sleep(0.1)
        raised = await api.data(
            "hotline",
            RAISE,
            {
                "in": {
                    "channel": "HOTLINE_96525",
                    "riskLevel": "LOW",
                    "areaUnit": gid("Unit", api.district.communities[0]["grid"]),
                }
            },
        )
        alert_id = int(base64.b64decode(raised["raiseAlert"]["alert"]["id"]).decode()[6:])
        async with asyncio.timeout(10):
            while not any(r.alert_id == alert_id for r in await queue.get()):
                pass
        assert len(feed_tasks()) >= 1
    await feed.aclose()
    assert feed_tasks() == [], "shutdown waited for every feed task"
