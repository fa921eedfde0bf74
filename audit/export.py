"""Export a slice of the access log as JSON Lines, CSV, or a FHIR R4 Bundle of AuditEvents.

Every format keeps ``seq``, ``prev_hash``, ``hash_alg`` and ``hash``, so a slice can be verified
on its own (``xinqiao audit verify --file``): its events link to each other, and its first event's
``prev_hash`` can be matched against the previous slice or a signed checkpoint. The FHIR mapping
follows the IHE Basic Audit Log Patterns (read / query / create / update), recording identifiers,
never names or other content.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from audit.chain import CHAINED_FIELDS, _plain
from domain.access_log import AccessEvent

FIELDS = (*CHAINED_FIELDS, "hash")
PAGE = 5000

ACTION = {"read": "R", "search": "E", "write": "U", "denied": "R", "export": "R"}
SUBTYPE = {
    "read": "read",
    "search": "search-type",
    "write": "update",
    "denied": "read",
    "export": "read",
}
OUTCOME = {"permitted": "0", "partly_redacted": "0", "denied": "4"}


async def events(
    session: AsyncSession, since: datetime | None, until: datetime | None
) -> AsyncIterator[dict[str, Any]]:
    after = 0
    columns = [getattr(AccessEvent, name) for name in FIELDS]
    while True:
        stmt = select(*columns).where(AccessEvent.seq > after)
        if since is not None:
            stmt = stmt.where(AccessEvent.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(AccessEvent.occurred_at < until)
        rows = (await session.execute(stmt.order_by(AccessEvent.seq).limit(PAGE))).mappings().all()
        if not rows:
            return
        for row in rows:
            yield {name: _plain(row[name]) for name in FIELDS}
        after = rows[-1]["seq"]


def jsonl_line(event: Mapping[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n"


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out).writerow(FIELDS)
    return out.getvalue()


def csv_line(event: Mapping[str, Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(
        [
            json.dumps(event[f], ensure_ascii=False)
            if isinstance(event[f], list | dict)
            else ("" if event[f] is None else event[f])
            for f in FIELDS
        ]
    )
    return out.getvalue()


def fhir_audit_event(e: Mapping[str, Any]) -> dict[str, Any]:
    detail = [
        {"type": "xinqiao.fields", "valueString": ",".join(e["fields"])},
        {"type": "xinqiao.redacted", "valueString": ",".join(e["redacted"])},
        {"type": "xinqiao.field_classes", "valueString": ",".join(e["field_classes"])},
        {"type": "xinqiao.relations", "valueString": ",".join(e["relations"])},
    ]
    entities: list[dict[str, Any]] = [
        {
            "what": {
                "identifier": {
                    "system": f"urn:xinqiao:{e['entity']}",
                    "value": str(e["entity_id"] or ""),
                }
            },
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
                "display": "System Object",
            },
            "detail": detail,
        },
        {
            "what": {"identifier": {"system": "urn:xinqiao:chain", "value": str(e["seq"])}},
            "type": {"system": "urn:xinqiao:chain", "code": "link"},
            "detail": [
                {"type": "seq", "valueString": str(e["seq"])},
                {"type": "hash_alg", "valueString": e["hash_alg"]},
                {"type": "prev_hash", "valueString": e["prev_hash"]},
                {"type": "hash", "valueString": e["hash"]},
            ],
        },
    ]
    if e["person_id"] is not None:
        entities.insert(
            1,
            {
                "what": {
                    "identifier": {"system": "urn:xinqiao:person", "value": str(e["person_id"])}
                },
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            },
        )
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": "urn:xinqiao:staff", "value": e["actor_username"]}},
        "requestor": True,
        "role": [
            {"coding": [{"system": "urn:xinqiao:role", "code": r}]}
            for r in str(e["actor_roles"]).split(",")
            if r
        ],
    }
    if e["client_address"]:
        agent["network"] = {"address": e["client_address"], "type": "2"}
    if e["token_id"]:
        agent["policy"] = [f"urn:xinqiao:token:{e['token_id']}"]
    return {
        "resourceType": "AuditEvent",
        "id": f"xq-{e['seq']}",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "Restful Operation",
        },
        "subtype": [
            {
                "system": "http://hl7.org/fhir/restful-interaction",
                "code": SUBTYPE.get(e["kind"], "read"),
            }
        ],
        "action": ACTION.get(e["kind"], "R"),
        "recorded": e["occurred_at"],
        "outcome": OUTCOME.get(e["outcome"], "0"),
        "outcomeDesc": e["reason"] or e["outcome"],
        "purposeOfEvent": [{"coding": [{"system": "urn:xinqiao:purpose", "code": e["purpose"]}]}],
        "agent": [agent],
        "source": {
            "site": e["request_id"],
            "observer": {"display": "xinqiao"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }


def event_from_fhir(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Enough of an event back from its FHIR form to check the chain links (not the hashes of
    the full content, which FHIR does not carry verbatim)."""
    link = next(en for en in resource["entity"] if en["type"].get("system") == "urn:xinqiao:chain")
    values = {d["type"]: d["valueString"] for d in link["detail"]}
    return {
        "seq": int(values["seq"]),
        "prev_hash": values["prev_hash"],
        "hash": values["hash"],
        "hash_alg": values["hash_alg"],
    }
