"""Observability through the public API: spans per request, operation, row load, key batch,
statement and access-log write, with no personal value in any attribute; the trace id in
access events, error responses, logs and the response header; metrics for durations, denials
and token rejections; and tracing off costs nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from api.telemetry import Telemetry
from domain import models as m
from domain.session import create_engine, system_session
from tests import observability
from tests.builders import make_alert, number_of, pass_deadline
from tests.conftest import Api

PERSONS = """query Persons { persons(first: 20) { edges { node { id name idNumber phone } } } }"""


def traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return trace_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


async def _post(api: Api, user: str, query: str, header: str) -> tuple[dict, str]:
    response = await api.post(
        {"query": query},
        {"Authorization": f"Bearer {api.token(user)}", "traceparent": header},
    )
    return response.json(), response.headers["x-trace-id"]


async def test_a_request_is_one_trace_of_operation_level_spans_without_personal_values(
    api: Api,
) -> None:
    trace_id, header = traceparent()
    body, echoed = await _post(api, "social.donghu", PERSONS, header)
    assert echoed == trace_id, "the caller's trace is continued and named in the response"
    revealed = [
        v
        for e in body["data"]["persons"]["edges"]
        for v in (e["node"]["name"], e["node"]["idNumber"], e["node"]["phone"])
        if v
    ]
    assert len(revealed) >= 3, "control: personal values did leave in the response"

    spans = observability.SPANS.of_trace(trace_id)
    names = [s.name for s in spans]
    assert "POST /graphql" in names
    for expected in ("graphql.operation", "authz.rows", "crypto.unwrap", "audit.write"):
        assert expected in names, expected
    assert any(n.startswith("db SELECT") for n in names)
    assert any(n == "db INSERT" for n in names), "the access events' insert"
    by_name = {s.name: s for s in spans}
    server, operation = by_name["POST /graphql"], by_name["graphql.operation"]
    assert operation.parent is not None and operation.parent.span_id == server.context.span_id
    rows = by_name["authz.rows"]
    assert rows.parent is not None and rows.parent.span_id == operation.context.span_id
    attrs = dict(operation.attributes or {})
    assert attrs["graphql.operation.name"] == "Persons"
    assert attrs["graphql.operation.type"] == "query"
    assert len(str(attrs["graphql.document.hash"])) >= 16
    assert int(attrs["crypto.fields_opened"]) >= len(revealed)
    assert int(attrs["authz.decisions"]) >= 1 and int(attrs["authz.rows_visible"]) >= 20
    assert len(spans) < 200, "no span per field"

    values = " ".join(str(v) for s in spans for v in (s.attributes or {}).values())
    assert [v for v in revealed if v in values] == []


async def test_the_trace_id_is_in_every_access_event_of_the_request(api: Api) -> None:
    trace_id, header = traceparent()
    await _post(api, "social.donghu", PERSONS, header)
    async with system_session(api.engine, reason="test assertion") as s:
        found = list(
            (
                await s.execute(
                    select(m.AccessEvent.trace_id).where(m.AccessEvent.trace_id == trace_id)
                )
            ).scalars()
        )
    assert len(found) >= 20


async def test_errors_and_refusals_carry_the_trace_id(api: Api) -> None:
    trace_id, header = traceparent()
    body, echoed = await _post(
        api,
        "social.donghu",
        'mutation { erasePerson(id: "UGVyc29uOjE=", reason: "x") { erased errors { code } } }',
        header,
    )
    assert body["data"]["erasePerson"]["errors"] == [{"code": "FORBIDDEN"}]
    bad = await _post(api, "social.donghu", "{ node(id: 12) { id } }", header)
    assert bad[0]["errors"][0]["extensions"]["traceId"] == trace_id == echoed
    # No traceparent: a fresh id all the same, in the header and the error.
    response = await api.post({"query": "{ node(id: 12) { id } }"}, {"Authorization": "Bearer x"})
    assert response.status_code == 401 and len(response.headers["x-trace-id"]) == 32
    assert response.json()["errors"][0]["extensions"]["traceId"] == response.headers["x-trace-id"]


async def test_metrics_count_durations_denials_and_rejected_tokens(api: Api) -> None:
    await _post(api, "social.donghu", PERSONS, traceparent()[1])
    await _post(
        api,
        "social.donghu",
        'mutation Erase { erasePerson(id: "UGVyc29uOjE=", reason: "x") { erased } }',
        traceparent()[1],
    )
    await api.post({"query": "{ __typename }"}, {"Authorization": "Bearer not-a-token"})

    durations = observability.metric_points("xinqiao.graphql.duration")
    assert any(a.get("graphql.operation.name") == "Persons" for a, _ in durations)
    denials = observability.metric_points("xinqiao.authz.denials")
    assert any(a.get("role") == "social_worker" for a, _ in denials), denials
    rejected = observability.metric_points("xinqiao.auth.token_rejections")
    assert any(a.get("reason") == "invalid" for a, _ in rejected)
    writes = observability.metric_points("xinqiao.audit.write.duration")
    assert writes and all(p.count >= 1 for _, p in writes)  # type: ignore[attr-defined]


async def test_log_lines_are_json_with_the_trace_id_and_no_query_string(api: Api) -> None:
    trace_id, header = traceparent()
    secret = "13800000000"
    await api.get(
        f"/graphql?query=%7Bpersons(phone:%22{secret}%22)%7BtotalCount%7D%7D",
        {"traceparent": header},
    )
    lines = [json.loads(line) for line in observability.LOGS.getvalue().splitlines() if line]
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    assert mine and mine[-1]["message"] == "request" and mine[-1]["path"] == "/graphql"
    assert secret not in json.dumps(mine)


def test_the_scan_finds_a_planted_value() -> None:
    """Control for the end-of-session scan (tests/conftest.py): it does find a value."""
    assert observability.hits('{"message": "x 110105199001011234"}', {"110105199001011234"})
    assert observability.hits("nothing here", {"110105199001011234"}) == []


def test_tracing_is_off_unless_an_exporter_is_configured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    off = Telemetry.from_env({})
    assert not off.tracing
    with off.span("authz.rows", {"a": 1}) as attrs:
        attrs["b"] = 2  # a plain dict: nothing started
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    off.instrument(engine)
    assert not engine.sync_engine.dispatch.before_cursor_execute, "no statement hook installed"
    assert Telemetry.from_env({"OTEL_TRACES_EXPORTER": "none"}).tracing is False
    assert Telemetry.from_env({"OTEL_TRACES_EXPORTER": "console"}).tracing is True
    assert (
        Telemetry.from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}).tracing
        is False
    )
    with pytest.raises(SystemExit, match="unknown exporter"):
        Telemetry.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    otlp = Telemetry.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"})
    assert otlp.tracing
    otlp.shutdown()


async def test_escalations_are_counted(api: Api) -> None:
    """The in-server scheduler reports each tick's escalations (create_app passes the
    ``xinqiao.alerts.escalated`` counter's ``add`` as ``on_escalated``), and gives each tick a
    trace id of its own."""
    import asyncio

    from api import jobs

    raised = await make_alert(api, community=2)
    alert_id = number_of(raised)
    await pass_deadline(api, raised)

    stop = asyncio.Event()
    seen: list[int] = []

    def escalated(count: int) -> None:
        seen.append(count)
        stop.set()  # one tick, then the loop ends between ticks as at shutdown

    async with asyncio.timeout(30):
        await jobs.run_forever(api.engine, 60, "sha256", on_escalated=escalated, stop=stop)
    assert seen and seen[0] >= 1
    async with system_session(api.engine, reason="test assertion") as s:
        traces = set(
            (
                await s.execute(
                    select(m.AccessEvent.trace_id).where(
                        m.AccessEvent.entity == "alert",
                        m.AccessEvent.entity_id == alert_id,
                        m.AccessEvent.actor_username == "scheduler",
                    )
                )
            ).scalars()
        )
    assert len(traces) == 1 and None not in traces, "the tick's events share its trace id"


async def test_operation_labels_come_from_the_document_not_the_request(api: Api) -> None:
    """``operationName`` is free text from the client: only a name that an operation of the
    document actually has becomes a span attribute, a metric label and the access log's
    operation."""
    two = (
        "query Counted { persons(first: 1) { totalCount } } "
        "query Listed { persons(first: 1) { edges { node { id } } } }"
    )
    trace_id, header = traceparent()
    chosen = await api.post(
        {"query": two, "operationName": "Listed"},
        {"Authorization": f"Bearer {api.token('social.donghu')}", "traceparent": header},
    )
    assert chosen.json()["data"]["persons"]["edges"]
    operation = next(
        s for s in observability.SPANS.of_trace(trace_id) if s.name == "graphql.operation"
    )
    assert (operation.attributes or {})["graphql.operation.name"] == "Listed"
    async with system_session(api.engine, reason="test assertion") as s:
        logged = set(
            (
                await s.execute(
                    select(m.AccessEvent.operation).where(m.AccessEvent.trace_id == trace_id)
                )
            ).scalars()
        )
    assert logged == {"Listed"}

    spoofed = "王小明_13800138000"
    trace_id, header = traceparent()
    refused = await api.post(
        {"query": PERSONS, "operationName": spoofed},
        {"Authorization": f"Bearer {api.token('social.donghu')}", "traceparent": header},
    )
    assert refused.status_code == 400, "no operation of that name: nothing runs"
    spans = observability.SPANS.of_trace(trace_id)
    assert spans, "the refused request is traced"
    seen = [str(v) for sp in spans for v in [sp.name, *(sp.attributes or {}).values()]]
    seen += [line for line in observability.LOGS.getvalue().splitlines() if trace_id in line]
    seen += list(observability.metric_labels())
    assert not [v for v in seen if "王小明" in v or "13800138000" in v]


async def test_paths_outside_the_service_are_named_other(api: Api) -> None:
    trace_id, header = traceparent()
    response = await api.get("/persons/110105199001011234", {"traceparent": header})
    assert response.status_code == 404
    names = [s.name for s in observability.SPANS.of_trace(trace_id)]
    assert names == ["GET other"]
    lines = [json.loads(line) for line in observability.LOGS.getvalue().splitlines() if line]
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    assert mine[-1]["path"] == "other" and "110105" not in json.dumps(mine)


async def test_an_unhandled_exception_is_a_500_with_the_trace_id_and_no_message() -> None:
    """What escapes the application is answered by the trace middleware: the ids in the body
    and header, the exception's type (not its message, which may quote data) in the log and
    the span."""
    import httpx
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from api.telemetry import TraceMiddleware

    secret = "110105199001011234"

    async def broken(_request: object) -> None:
        raise ValueError(f"bad value {secret}")

    app = Starlette(  # as create_app stacks it: Starlette's error middleware outside this one
        routes=[Route("/graphql", broken, methods=["POST"])],
        middleware=[Middleware(TraceMiddleware, telemetry=observability.TELEMETRY)],
    )
    trace_id, header = traceparent()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/graphql", json={}, headers={"traceparent": header})
    assert response.status_code == 500
    assert response.headers["x-trace-id"] == trace_id
    assert response.json()["errors"][0]["extensions"] == {
        "code": "INTERNAL_ERROR",
        "traceId": trace_id,
    }
    [server] = observability.SPANS.of_trace(trace_id)
    assert (server.attributes or {})["error.type"] == "ValueError"
    assert not server.status.description
    lines = [json.loads(line) for line in observability.LOGS.getvalue().splitlines() if line]
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    assert any(line["message"] == "unhandled ValueError" for line in mine)
    assert "ValueError" in json.dumps(mine) and secret not in json.dumps(mine)
    assert [line["status"] for line in mine if line["message"] == "request"] == [500]


async def test_sign_in_refusals_are_counted_by_their_code(api: Api) -> None:
    await api.gql(
        None,
        """mutation { signIn(username: "counselor", password: "wrong password") {
           accessToken errors { code } } }""",
    )
    denials = observability.metric_points("xinqiao.authz.denials")
    assert any(a.get("reason") == "invalid_credentials" for a, _ in denials), denials


async def test_unknown_methods_are_named_other(api: Api) -> None:
    import httpx

    trace_id, header = traceparent()
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request("BREW", "/graphql", headers={"traceparent": header})
    assert response.status_code in (400, 405)
    assert [s.name for s in observability.SPANS.of_trace(trace_id)] == ["OTHER /graphql"]
