"""Live alerts through real ``xinqiao serve`` processes over real sockets (issue 14, item 8).

The in-process tests (``tests/api/test_live_alerts.py``) drive the ASGI app directly, so they
passed while the server ``make run`` starts answered every WebSocket upgrade with 400 (uvicorn had
no WebSocket library). These start the command line as a subprocess on a loopback port, against
the suite's migrated demo district and its keys, and talk to it as a browser would: GraphQL over
HTTP, and graphql-transport-ws with the pinned ``websockets`` client. With two servers on one
PostgreSQL database, an alert raised through one reaches a subscriber of the other by
``NOTIFY``, long before either would poll. Every wait is bounded; servers are stopped in teardown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.jobs import escalate_overdue
from domain import models as m
from domain.base import utcnow
from domain.session import system_session
from tests import served as serving
from tests.conftest import Api
from tests.served import Served

PROTOCOL = [Subprotocol("graphql-transport-ws")]
SUBSCRIBE = """subscription Live { alertEvents { kind alert { id summary status
  redactedFields } } }"""
RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) { alert { id } errors { code } } }"""
WAIT = 15.0
"""Seconds any one message may take (a hang fails here, not at the suite's timeout)."""
SETTLE = 1.0
"""After subscribing, time for the feed's first read (what was routed before it is not news)."""

TIMINGS: dict[str, float] = {}

# A server process sees only what is committed: every test here runs on a private copy of the
# district (tests/conftest.py), which it may commit to.
pytestmark = pytest.mark.own_database


@pytest.fixture(scope="module", autouse=True)
def report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    """How long the real servers took, in the run's summary (start, push latency, stop)."""
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not TIMINGS:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        for name, seconds in TIMINGS.items():
            reporter.write_line(f"real server timing: {name}: {seconds:.2f} s")
    TIMINGS.clear()  # pytest may end this fixture more than once (per backend): no repeats


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


def number(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


def env_for(api: Api, **extra: str) -> dict[str, str]:
    """A server over the suite's demo district: no scheduler (tests escalate when they mean to),
    a quick fallback poll."""
    return {
        "XINQIAO_DATABASE_URL": api.url,
        "XINQIAO_KEY_DIR": str(api.app.state.settings.key_dir),
        "XINQIAO_SCHEDULER_SECONDS": "0",
        "XINQIAO_ALERT_FEED_SECONDS": "0.2",
        **extra,
    }


@pytest.fixture
async def server(api: Api, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    log = tmp_path_factory.mktemp(f"serve-{api.backend}") / "server.log"
    served = await serving.start(env_for(api), log)
    TIMINGS[f"{api.backend}: start"] = served.started_in
    yield served
    assert serving.stop(served), served.output()[-2000:]
    TIMINGS[f"{api.backend}: stop"] = served.stopped_in or 0.0


async def _open(served: Served, payload: dict[str, Any]) -> ClientConnection:
    socket = await connect(
        served.ws, subprotocols=PROTOCOL, open_timeout=WAIT, close_timeout=2, proxy=None
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket


async def _receive(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def _subscribe(served: Served, token: str) -> ClientConnection:
    socket = await _open(served, {"Authorization": f"Bearer {token}"})
    assert (await _receive(socket))["type"] == "connection_ack"
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    await asyncio.sleep(SETTLE)
    return socket


async def _event_for(socket: ClientConnection, alert_id: str) -> dict[str, Any]:
    """The next event about ``alert_id`` (other tests' alerts may come first)."""
    for _ in range(100):
        message = await _receive(socket)
        assert message["type"] == "next", message
        event: dict[str, Any] = message["payload"]["data"]["alertEvents"]
        if event["alert"]["id"] == alert_id:
            return event
    raise AssertionError("no event for the alert")


async def _raise(served: Served, api: Api, community: int, summary: str) -> str:
    body = await served.gql(
        api.token("hotline"),
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "LOW",
                "areaUnit": gid("Unit", api.district.communities[community]["grid"]),
                "summary": summary,
            }
        },
    )
    assert not body.get("errors") and body["data"]["raiseAlert"]["errors"] == [], body
    alert_id: str = body["data"]["raiseAlert"]["alert"]["id"]
    return alert_id


async def test_graphql_over_http_on_a_real_server(api: Api, server: Served) -> None:
    body = await server.gql(api.token("grid.donghu"), "{ viewer { roles unit { name } } }")
    assert body.get("errors") is None, body
    assert body["data"]["viewer"]["roles"] and body["data"]["viewer"]["unit"]["name"]
    refused = await server.gql(None, "{ persons(first: 1) { totalCount } }")
    assert refused["data"] is None or refused["data"].get("persons") is None


async def test_alert_events_over_a_real_websocket(api: Api, server: Served) -> None:
    """The upgrade is answered by uvicorn's WebSocket implementation (not 400), the socket
    authenticates in connection_init, and an alert raised over HTTP is pushed to it."""
    socket = await _subscribe(server, api.token("grid.donghu"))
    try:
        began = time.monotonic()
        alert_id = await _raise(server, api, 0, "实机测试：来电者称邻居多日未出门")
        event = await _event_for(socket, alert_id)
        TIMINGS[f"{api.backend}: raise → event, one server"] = time.monotonic() - began
        assert event["kind"] == "RAISED"
        assert event["alert"]["summary"].startswith("实机测试"), "the target team reads it"
    finally:
        await socket.close()


@pytest.mark.parametrize(
    "payload", [{}, {"Authorization": "Bearer not-a-token"}], ids=["missing", "bad"]
)
async def test_a_real_socket_refuses_a_missing_or_bad_token(
    api: Api, server: Served, payload: dict[str, str]
) -> None:
    socket = await _open(server, payload)
    try:
        with pytest.raises(ConnectionClosed) as closed:
            await _receive(socket)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    finally:
        await socket.close()


def test_serve_refuses_to_start_without_a_websocket_library(tmp_path: Path) -> None:
    """Without the library uvicorn would serve HTTP and answer every upgrade with 400; the
    command refuses to start instead, and says why."""
    hidden = tmp_path / "shadow" / "websockets"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    began = time.monotonic()
    result = serving.subprocess.run(
        [serving.XINQIAO, "serve", "--port", str(serving.free_port())],
        env={**serving.os.environ, "PYTHONPATH": str(tmp_path / "shadow")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    TIMINGS["serve without websockets: refused"] = time.monotonic() - began
    assert result.returncode != 0
    assert "websockets" in result.stderr and "requirements.lock" in result.stderr, result.stderr


async def test_an_alert_raised_through_one_server_is_pushed_by_another(
    api: Api, tmp_path: Path
) -> None:
    """Two server processes on one PostgreSQL database, both polling only once a minute: the
    alert raised through the first, and its escalation by a third process, reach a subscriber
    of the second within seconds, because the routing transactions NOTIFY and the second
    server's feed LISTENs."""
    if api.backend != "postgresql":
        pytest.skip(
            "two server processes share a database only on PostgreSQL (LISTEN/NOTIFY); "
            "SQLite is one embedded process and its feed polls"
        )
    slow = {"XINQIAO_ALERT_FEED_SECONDS": "60", "XINQIAO_ALERT_SAFETY_POLL_SECONDS": "60"}
    first, second = await asyncio.gather(
        serving.start(env_for(api, **slow), tmp_path / "first.log"),
        serving.start(env_for(api, **slow), tmp_path / "second.log"),
    )
    TIMINGS["postgresql: start two servers"] = max(first.started_in, second.started_in)
    try:
        governance = await _subscribe(second, api.token("zongzhi"))
        try:
            began = time.monotonic()
            alert_id = await _raise(first, api, 1, "跨进程测试：社区网格员上报独居老人情绪低落")
            raised = await _event_for(governance, alert_id)
            TIMINGS["postgresql: raise on one → event on the other"] = time.monotonic() - began
            assert raised["kind"] == "RAISED"
            # Nobody staffs community 1's grid: the alert is owned by the duty officer's unit,
            # the governance centre, which may read what it has to act on (ADR 0009).
            assert raised["alert"]["summary"], "the owner reads the alert's summary"
            assert time.monotonic() - began < 30, "pushed, not found by the minute's poll"

            async with system_session(api.engine, reason="test: the deadline passes") as s:
                await s.execute(
                    update(m.Alert)
                    .where(m.Alert.id == number(alert_id))
                    .values(ack_deadline=utcnow() - timedelta(minutes=1))
                )
                await s.commit()
            began = time.monotonic()
            assert await escalate_overdue(api.engine) >= 1  # a third process, as cron would
            escalated = await _event_for(governance, alert_id)
            TIMINGS["postgresql: escalate elsewhere → event"] = time.monotonic() - began
            assert escalated["kind"] == "ESCALATED"
        finally:
            await governance.close()
    finally:
        codes = [serving.stop(first), serving.stop(second)]
        TIMINGS["postgresql: stop two servers"] = (first.stopped_in or 0) + (second.stopped_in or 0)
    assert codes == [True, True], first.output()[-2000:] + second.output()[-2000:]
