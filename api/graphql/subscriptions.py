"""The subscription root: alerts pushed as they are raised or escalated.

Each delivery is one privacy decision and one access-log request: the subscriber's gate decides
which of the routed alerts it may see at that moment (not when it subscribed: an alert escalated
away from a team stops reaching it), and ``AccessLogCommit`` writes what was revealed before the
message is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from enum import Enum

import strawberry

from api.graphql.selection import requested
from api.graphql.types.alerts import AlertType
from api.live import LiveConnection, OverHttpOnly, SessionExpired
from domain import models as m

IDLE_RECHECK = 30.0
"""With no alert to deliver, a socket's subject is still re-checked this often."""


@strawberry.enum
class AlertEventKind(Enum):
    RAISED = "raised"
    ESCALATED = "escalated"


@strawberry.type(description="An alert that has just reached a team you may see it through.")
class AlertEvent:
    kind: AlertEventKind
    alert: AlertType


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="New and escalated alerts you may see, as they happen (graphql-transport-ws). "
        'Authenticate in connection_init: {"Authorization": "Bearer <token>"}. The stream '
        "ends when the token expires; reconnect with a fresh one."
    )
    async def alert_events(self, info: strawberry.Info) -> AsyncGenerator[AlertEvent, None]:
        live = info.context
        if not isinstance(live, LiveConnection):
            raise OverHttpOnly()
        names = requested(info, ("alert",))
        operation = info.operation.name.value if info.operation.name else None
        async with live.feed.subscribe() as queue:
            while True:
                try:  # not wait_for: on 3.11 it can swallow a cancel that meets a result
                    async with asyncio.timeout(IDLE_RECHECK):
                        batch = await queue.get()
                except TimeoutError:
                    batch = []
                if not await live.still_allowed():
                    raise SessionExpired()
                for routed in batch:
                    context = live.begin()
                    try:
                        context.access_log.operation = operation
                        found = await context.gate.by_ids(
                            m.Alert, [routed.alert_id], log_misses=False
                        )
                        visible = found.get(routed.alert_id)
                        if visible is None:
                            continue
                        kind = (
                            AlertEventKind.ESCALATED if routed.escalated else AlertEventKind.RAISED
                        )
                        yield AlertEvent(
                            kind=kind, alert=AlertType.from_names(visible, info, names)
                        )
                    finally:
                        # Delivered: the access-log hook has already closed it. Skipped, failed
                        # or unsubscribed mid-way: close it here.
                        if LiveConnection.current() is context:
                            await context.close()
                            live.end()
