"""Seed 001's high-risk story through real ``xinqiao serve`` processes (issue 14, "Done when").

The in-process stories (``tests/api/test_crisis_path.py``, ``tests/api/test_stories.py``) drive
the ASGI app; this walks the same steps as a deployment runs them: GraphQL over HTTP to a real
server, the live feed over a real graphql-transport-ws socket to a second server on the same
PostgreSQL database, escalation by ``xinqiao jobs run-once`` (a third process, as cron), and
notifications delivered by the server's worker to a local SMTP server and a local group-robot
webhook. Steps:

hotline intake (a new person) → alert at the joint team, owned by the police station, which
reads it → nobody acknowledges in time → escalation to the nearest unit where someone may act,
whose account acknowledges → the police open a case from the alert (linked and closed) → the
police, leading, staff the case from the health centre's directory → the counsellor's
assessment → a follow-up; the messages reach the SMTP and webhook receivers without personal
data; the second server pushed both events live. A volunteer's concern about a 失独 family
reaches the family-planning association. The auditor finds every step's write in the access log.

On SQLite (one embedded process: no LISTEN/NOTIFY between servers) the single server pushes
the events and only the second server is skipped. Every wait is bounded; servers are stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from domain import models as m
from domain.notifications import Channel
from domain.session import system_session
from tests import observability
from tests import served as serving
from tests.builders import gid, number_of, pass_deadline
from tests.conftest import Api
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.served import Served

# A server process sees only what is committed: a private copy of the district.
pytestmark = pytest.mark.own_database

WAIT = 20.0
"""Seconds any one message, delivery or subprocess may take before the test fails."""
PROTOCOL = [Subprotocol("graphql-transport-ws")]
SUBSCRIBE = "subscription Live { alertEvents { kind alert { id status targetUnit { id } } } }"

NAME, PHONE = "贺思远", "13900007788"
SUMMARY = "来电者称其弟弟留下遗书后离家，手机关机"

RAISE = """mutation($in: RaiseAlertInput!) { raiseAlert(input: $in) {
  alert { id possibleDuplicates } errors { code field } } }"""
ALERT = """query($id: ID!) { node(id: $id) { ... on Alert { status resolution summary
  targetUnit { id } person { id } case { id } redactedFields } } }"""
ACK = """mutation($id: ID!) { acknowledgeAlert(id: $id) { alert { status } errors { code } } }"""
OPEN = """mutation($in: OpenCaseInput!) { openCase(input: $in) {
  case { id } errors { code field }
  routing { leadUnit { id } coUnits { id } visibleToYou } } }"""
DIRECTORY = """query($id: ID!) { node(id: $id) { ... on Unit {
  staff { id displayName roles active } } } }"""
ASSIGN = """mutation($case: ID!, $staff: ID!) { assignCaseWorker(case: $case, staff: $staff) {
  errors { code field } } }"""
ASSESS = """mutation($in: RecordAssessmentInput!) { recordAssessment(input: $in) {
  assessment { id score severity } alertRaised errors { code } } }"""
FOLLOW = """mutation($in: ScheduleFollowUpInput!) { scheduleFollowUp(input: $in) {
  followUp { id } errors { code } } }"""
CONCERN = """mutation($in: RaiseConcernInput!) { raiseConcern(input: $in) {
  alert { id status } errors { code field } } }"""
EVENTS = """query($after: String, $since: DateTime!) {
  accessEvents(first: 100, after: $after, filter: {since: $since}) {
  pageInfo { hasNextPage endCursor }
  edges { node { actorUsername kind entity entityId reason outcome } } } }"""

# Which account acts for a unit the escalation may reach (ADR 0009).
ACTS_FOR = {"governance": "duty", "police:donghu": "police.donghu"}


def _env(api: Api, smtp: SmtpReceiver, robot: HttpReceiver, **extra: str) -> dict[str, str]:
    return {
        "XINQIAO_DATABASE_URL": api.url,
        "XINQIAO_KEY_DIR": str(api.app.state.settings.key_dir),
        "XINQIAO_SCHEDULER_SECONDS": "0",  # escalation is the cron job's, when the test says
        "XINQIAO_ALERT_FEED_SECONDS": "0.2",
        "XINQIAO_SMTP_HOST": "127.0.0.1",
        "XINQIAO_SMTP_PORT": str(smtp.port),
        "XINQIAO_SMTP_SECURITY": "none",
        "XINQIAO_WEBHOOK_HOSTS": robot.host,
        "XINQIAO_NOTIFY_LINK_BASE": "https://xq.example/alerts/",
        **extra,
    }


async def ok(served: Served, api: Api, user: str, query: str, variables: dict[str, Any]) -> Any:
    body = await served.gql(api.token(user), query, variables)
    assert not body.get("errors"), (user, body.get("errors"))
    (payload,) = body["data"].values()
    if isinstance(payload, dict) and "errors" in payload:
        assert payload["errors"] == [], (user, payload["errors"])
    return payload


async def read(served: Served, api: Api, user: str, query: str, variables: dict[str, Any]) -> Any:
    body = await served.gql(api.token(user), query, variables)
    assert not body.get("errors"), (user, body.get("errors"))
    return body["data"]["node"]


async def _subscribe(served: Served, token: str) -> ClientConnection:
    socket = await connect(
        served.ws, subprotocols=PROTOCOL, open_timeout=WAIT, close_timeout=2, proxy=None
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert (await _receive(socket))["type"] == "connection_ack"
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    await asyncio.sleep(1.0)  # the feed's first read: what was routed before is not news
    return socket


async def _receive(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def _event(socket: ClientConnection, alert: str, kind: str) -> dict[str, Any]:
    """The next event of ``kind`` about ``alert`` (others may come first), bounded."""
    for _ in range(50):
        message = await _receive(socket)
        assert message["type"] == "next", message
        event: dict[str, Any] = message["payload"]["data"]["alertEvents"]
        if event["alert"]["id"] == alert and event["kind"] == kind:
            return event
    raise AssertionError(f"no {kind} event for the alert")


def _cli(api: Api, *args: str) -> str:
    """The operator command line as its own process (as cron runs it), bounded."""
    env = {
        **os.environ,
        "XINQIAO_DATABASE_URL": api.url,
        "XINQIAO_KEY_DIR": str(api.app.state.settings.key_dir),
    }
    done = subprocess.run(
        [serving.XINQIAO, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def _until(check: Any, what: str) -> None:
    began = time.monotonic()
    while time.monotonic() - began < WAIT:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {WAIT:.0f} s: {what}")


async def _access_events(served: Served, api: Api, since: datetime) -> list[dict[str, Any]]:
    """Every access event since the story began, as the auditor reads them over HTTP."""
    events: list[dict[str, Any]] = []
    after = None
    for _ in range(50):
        body = await served.gql(
            api.token("auditor"), EVENTS, {"after": after, "since": since.isoformat()}
        )
        assert not body.get("errors"), body.get("errors")
        page = body["data"]["accessEvents"]
        events += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return events
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("the access log did not end")


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[SmtpReceiver, HttpReceiver]]:
    with SmtpReceiver() as smtp, HttpReceiver() as robot:
        yield smtp, robot


async def _contacts(api: Api, robot: HttpReceiver) -> None:
    """The police station and the governance centre (where the duty officer works) have a duty
    mailbox and a group robot."""
    async with system_session(api.engine, reason="test: units' duty contacts") as s:
        for key in ("police:donghu", "governance"):
            unit = api.district.units[key]
            s.add(
                m.UnitContact(unit_id=unit, channel=Channel.EMAIL, address=f"{unit}@duty.example")
            )
            s.add(
                m.UnitContact(
                    unit_id=unit,
                    channel=Channel.WEBHOOK,
                    address=robot.url(f"/cgi-bin/webhook/send?key={unit}"),
                )
            )
        await s.commit()


async def test_the_high_risk_story_through_real_servers(
    api: Api, tmp_path: Path, receivers: tuple[SmtpReceiver, HttpReceiver]
) -> None:
    smtp, robot = receivers
    began = datetime.now(UTC) - timedelta(seconds=5)
    await _contacts(api, robot)
    two = api.backend == "postgresql"
    slow = {"XINQIAO_ALERT_FEED_SECONDS": "60", "XINQIAO_ALERT_SAFETY_POLL_SECONDS": "60"}
    servers = [
        await serving.start(
            _env(api, smtp, robot, XINQIAO_NOTIFY_SECONDS="0.2"), tmp_path / "a.log"
        )
    ]
    try:
        if two:  # polls once a minute: only NOTIFY makes it push within seconds
            servers.append(
                await serving.start(
                    _env(api, smtp, robot, XINQIAO_NOTIFY_SECONDS="0", **slow), tmp_path / "b.log"
                )
            )
        first, live = servers[0], servers[-1]
        police_feed = await _subscribe(live, api.token("police.donghu"))
        duty_feed = await _subscribe(live, api.token("duty"))
        try:
            await _story(api, first, live, police_feed, duty_feed, smtp, robot, began)
        finally:
            await police_feed.close()
            await duty_feed.close()
    finally:
        clean = [serving.stop(s) for s in servers]
    assert all(clean), "".join(s.output()[-2000:] for s in servers)
    # On SQLite the story runs on one server (one embedded process): the push from a second
    # server process (LISTEN/NOTIFY) is asserted on PostgreSQL only.


async def _story(
    api: Api,
    first: Served,
    live: Served,
    police_feed: ClientConnection,
    duty_feed: ClientConnection,
    smtp: SmtpReceiver,
    robot: HttpReceiver,
    began: datetime,
) -> None:
    units = api.district.units
    police_unit = gid("Unit", units["police:donghu"])
    grid = gid("Unit", api.district.communities[0]["grid"])

    # 1. Hotline intake: a caller names someone new; the person is registered and linked.
    raised = await ok(
        first,
        api,
        "hotline",
        RAISE,
        {
            "in": {
                "channel": "HOTLINE_96525",
                "riskLevel": "HIGH",
                "areaUnit": grid,
                "summary": SUMMARY,
                "newPerson": {"name": NAME, "gender": "MALE", "phone": PHONE},
            }
        },
    )
    alert = raised["alert"]["id"]
    assert raised["alert"]["possibleDuplicates"] == 0

    # 2. The joint team has it at once; the police station owns it and reads it; the live feed
    #    of the other server pushed it.
    pushed = await _event(police_feed, alert, "RAISED")
    assert pushed["alert"]["targetUnit"]["id"] == police_unit
    police = await read(first, api, "police.donghu", ALERT, {"id": alert})
    assert police["targetUnit"]["id"] == police_unit and police["status"] == "OPEN"
    assert police["redactedFields"] == ["summary"], "the police never read the narrative"
    assert (await read(first, api, "grid.donghu", ALERT, {"id": alert}))["summary"] == SUMMARY
    nurse = await read(first, api, "counselor", ALERT, {"id": alert})  # the health centre
    assert nurse["summary"] == SUMMARY and nurse["person"] is not None

    # 3. Nobody acknowledges in 30 minutes: cron's run escalates it to the nearest unit where
    #    an account may act (ADR 0009), pushed live by the other server.
    await pass_deadline(api, alert)
    assert "escalated" in _cli(api, "jobs", "run-once")
    moved = await _event(duty_feed, alert, "ESCALATED")
    owner = moved["alert"]["targetUnit"]["id"]
    (key,) = [k for k in ACTS_FOR if gid("Unit", units[k]) == owner]
    assert key == "governance", "nobody above the police station may act: the duty officer"
    acked = await ok(first, api, ACTS_FOR[key], ACK, {"id": alert})
    assert acked["alert"]["status"] == "ACKNOWLEDGED"

    # 4. The health centre's counsellor, who may identify the caller's brother, opens a case from
    #    it: routed to the police station (lead), the alert linked and closed; the hotline
    #    follows the status only.
    person = nurse["person"]["id"]
    opened = await ok(
        first,
        api,
        "counselor",
        OPEN,
        {
            "in": {
                "subject": person,
                "sourceChannel": "HOTLINE_96525",
                "riskLevel": "HIGH",
                "presentingProblem": "留下遗书后离家",
                "alert": alert,
            }
        },
    )
    case = opened["case"]["id"]
    assert opened["routing"]["leadUnit"]["id"] == police_unit and opened["routing"]["visibleToYou"]
    closed = await read(first, api, "counselor", ALERT, {"id": alert})
    assert (closed["status"], closed["resolution"], closed["case"]) == (
        "CLOSED",
        "CASE_OPENED",
        {"id": case},
    )
    caller = await read(first, api, "hotline", ALERT, {"id": alert})
    assert caller["status"] == "CLOSED" and caller["case"] is None

    # 5. The police station leads: it staffs the case with the street's social worker, chosen
    #    from the social work station's staff directory.
    station = gid("Unit", units["social_station"])
    directory = await read(first, api, "police.donghu", DIRECTORY, {"id": station})
    worker = gid("Staff", api.district.staff["social.donghu"])
    (chosen,) = [s for s in directory["staff"] if s["id"] == worker]
    assert chosen["active"] and chosen["roles"] == ["SOCIAL_WORKER"]
    await ok(first, api, "police.donghu", ASSIGN, {"case": case, "staff": worker})

    # 6. Assessment and 7. follow-up by the assigned counsellor.
    assessed = await ok(
        first,
        api,
        "counselor",
        ASSESS,
        {"in": {"case": case, "instrument": "PHQ9", "answers": [2, 2, 1, 1, 2, 1, 1, 1, 0]}},
    )
    assert assessed["alertRaised"] is False and assessed["assessment"]["severity"]
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    follow = await ok(
        first,
        api,
        "counselor",
        FOLLOW,
        {"in": {"case": case, "kind": "HOME_VISIT", "dueAt": due}},
    )
    assert follow["followUp"]["id"]

    # 8. The server's worker delivered the raise (to the police station) and the escalation (to
    #    the governance centre) by email and group robot, naming the alert's link and no
    #    personal data. (The case's own routing alert to the police station may come too.)
    link = f"https://xq.example/alerts/{alert}"

    def about_the_call() -> tuple[set[str], set[str]]:
        mails = {r for mail in smtp.mails if link in mail.text for r in mail.recipients}
        hooks = {r.path for r in robot.requests if link in r.body["text"]["content"]}
        return mails, hooks

    expected = (
        {f"{units[k]}@duty.example" for k in ACTS_FOR},
        {f"/cgi-bin/webhook/send?key={units[k]}" for k in ACTS_FOR},
    )
    await _until(
        lambda: about_the_call() == expected,
        f"mails and webhook posts for the raise and the escalation: {about_the_call()}",
    )
    texts = [mail.everything for mail in smtp.mails]
    texts += [repr(r.body) + r.body["text"]["content"] for r in robot.requests]
    for text in texts:
        assert "高风险预警" in text and "https://xq.example/alerts/" in text, text
        assert not [p for p in (NAME, PHONE, SUMMARY, "遗书") if p in text], text
        assert observability.hits(text, observability.SECRETS) == []

    # 9. A volunteer's concern about a 失独 family reaches the family-planning association.
    member = gid("Person", api.district.records[0]["shidu_member"])
    concern = await ok(
        first,
        api,
        "volunteer.li",
        CONCERN,
        {
            "in": {
                "person": member,
                "kind": "MOOD",
                "urgency": "LOW",
                "text": "节前探访时老人哭了很久",
            }
        },
    )
    worry = concern["alert"]["id"]
    association = await read(first, api, "jisheng", ALERT, {"id": worry})
    assert association is not None and association["summary"].startswith("【情绪低落】")
    mine = await read(first, api, "volunteer.li", ALERT, {"id": worry})
    assert mine["status"] == "OPEN" and mine["summary"] is None

    # 10. Every step left its access and write events, as the auditor reads them.
    events = await _access_events(first, api, began)
    logged = {
        (e["actorUsername"], e["kind"], e["entity"], e["entityId"], e["reason"])
        for e in events
        if e["outcome"] != "denied"
    }
    a, c = number_of(alert), number_of(case)
    for step in (
        ("hotline", "write", "person", number_of(person), "intake"),
        ("hotline", "write", "alert", a, "create"),
        ("hotline", "write", "alert", a, "notify"),  # who caused the messages
        ("police.donghu", "read", "alert", a, None),
        ("scheduler", "write", "alert", a, "escalate"),
        (ACTS_FOR[key], "write", "alert", a, "acknowledge"),
        ("counselor", "write", "case", c, "create"),
        ("counselor", "write", "alert", a, "case_opened"),
        ("police.donghu", "read", "staff", number_of(worker), None),  # the directory
        ("police.donghu", "write", "case_assignment", None, "assign"),
        ("counselor", "write", "assessment", number_of(assessed["assessment"]["id"]), "create"),
        ("counselor", "write", "follow_up", number_of(follow["followUp"]["id"]), "create"),
        ("volunteer.li", "write", "alert", number_of(worry), "concern"),
        ("jisheng", "read", "alert", number_of(worry), None),
    ):
        assert [e for e in logged if all(x in (None, y) for x, y in zip(step, e, strict=True))], (
            step,
            sorted(logged, key=repr),
        )
