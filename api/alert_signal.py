"""Alert routings signalled between processes: PostgreSQL ``LISTEN``/``NOTIFY``.

Each server process's live feed (``api.live``) must learn that an alert was raised or escalated,
whichever process did it: this server, another one behind the same load balancer, the scheduler
of either, a cron ``xinqiao jobs run-once``. Polling the table alone makes that latency the poll
interval; here the transaction that creates or routes an alert also sends ``NOTIFY`` on
``CHANNEL``, and each feed listens on a dedicated connection (``Listener``), so a subscriber
connected to any process hears of it within milliseconds.

* **Only an id.** The payload is the alert's id and nothing else: notifications reach every
  session of the cluster that listens, outside the gate and the access log, so they carry no
  personal data. A woken feed reads what to deliver from the table, and each delivery is decided
  and logged through the subscriber's gate as before.
* **In the same transaction.** PostgreSQL delivers a notification when its transaction commits
  and drops it when the transaction (or the savepoint it was sent in) rolls back, so no feed is
  woken for an alert that does not exist, and none before the alert can be read.
* **A wake-up, not the message.** The feed still reads alerts routed since its watermark, so a
  lost notification (a listener reconnecting, a write path that sent none) delays an alert until
  the feed's slow safety poll and never loses it.
* **One hook.** An ``after_flush`` listener on every ORM session notices ``Alert`` rows inserted,
  or updated with a new ``routed_at``, and sends their ids: the use cases in ``api/services``
  raise alerts without knowing about it. Bulk statements bypass the unit of work, so the one that
  routes alerts (the scheduler's conditional UPDATEs) calls ``signal_routed`` itself.

SQLite (one embedded process) sends and listens to nothing: its feed polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, event, inspect, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.pool import NullPool

from domain.alerts import Alert
from domain.session import create_engine

log = logging.getLogger("xinqiao.live")

CHANNEL = "xinqiao_alert_routed"
"""The notification channel; each payload is one alert id in decimal."""

CONNECT_WAIT = 5.0
"""Seconds a listener waits to connect, to LISTEN or to answer a ping before giving up (the
feed then polls at its normal interval and tries again after the next poll)."""

_NOTIFY = text(
    "SELECT pg_notify(:channel, CAST(alert_id AS text)) FROM unnest(:ids) AS alert_id"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
"""One statement per flush, however many alerts it routed (a screening import raises hundreds)."""


def _postgres(dialect_name: str) -> bool:
    return dialect_name == "postgresql"


def _params(alert_ids: Sequence[int]) -> dict[str, object]:
    return {"channel": CHANNEL, "ids": sorted(set(alert_ids))}


async def signal_routed(session: AsyncSession, alert_ids: Sequence[int]) -> None:
    """Announce, in ``session``'s transaction, that these alerts were routed (for bulk
    statements, which the flush hook cannot see); nothing on SQLite."""
    if not alert_ids:
        return
    connection = await session.connection()
    if _postgres(connection.dialect.name):
        await connection.execute(_NOTIFY, _params(alert_ids))


def _routed_in_flush(session: Session) -> list[int]:
    """Alerts this flush inserted, or gave a new ``routed_at`` (raised, or routed again).

    In ``after_flush`` the session's ``new`` and ``dirty`` still show the flushed objects and
    their attribute history, and inserted rows have their ids."""
    ids = [obj.id for obj in session.new if isinstance(obj, Alert)]
    ids += [
        obj.id
        for obj in session.dirty
        if isinstance(obj, Alert) and inspect(obj).attrs.routed_at.history.has_changes()
    ]
    return ids


@event.listens_for(Session, "after_flush")
def _signal_flushed(session: Session, _flush: UOWTransaction) -> None:
    ids = _routed_in_flush(session)
    if not ids:
        return
    connection: Connection = session.connection()
    if _postgres(connection.dialect.name):
        connection.execute(_NOTIFY, _params(ids))


class Listener:
    """A dedicated PostgreSQL connection that ``LISTEN``s on ``CHANNEL`` and calls ``on_signal``
    for each notification, and when the connection is lost (so the feed polls and reconnects).

    Dedicated and outside the pool: a pooled connection would carry its ``LISTEN`` to whoever
    checks it out next, and would hold one of the request path's connections for as long as the
    feed runs. It runs in autocommit: a ``LISTEN`` issued inside a transaction would take effect
    only when that transaction commits."""

    def __init__(self, engine: AsyncEngine, on_signal: Callable[[], None]) -> None:
        self._url = engine.url.render_as_string(hide_password=False)
        self._on_signal = on_signal
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        """asyncpg's connection (untyped): where ``add_listener`` lives."""
        self._heard = 0.0
        self._failing = False

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    @property
    def pid(self) -> int | None:
        """The listening connection's server process (to find it in ``pg_stat_activity``)."""
        return self._driver.get_server_pid() if self.listening else None

    async def ensure(self, *, ping_after: float) -> bool:
        """Listen if not listening (again, after a lost connection), and ping a connection that
        has been silent for ``ping_after`` seconds (a half-open TCP connection hears nothing and
        says nothing). Whether it is listening; never raises."""
        if self.listening and time.monotonic() - self._heard < ping_after:
            return True
        try:
            async with asyncio.timeout(CONNECT_WAIT):
                if self.listening:
                    await self._driver.fetchval("SELECT 1")
                else:
                    await self._drop()
                    await self._listen()
        except Exception as exc:
            if not self._failing:  # once per outage, not once per poll
                log.warning("alert notifications unavailable, polling: %s", type(exc).__name__)
            self._failing = True
            await self._drop()
            return False
        if self._failing:
            log.info("alert notifications restored")
        self._failing = False
        self._heard = time.monotonic()
        return True

    async def _listen(self) -> None:
        if self._engine is None:
            self._engine = create_engine(
                self._url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        self._connection = await self._engine.connect()
        raw = await self._connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:  # only a connection already closed has none
            raise ConnectionError("listening connection closed")
        driver.add_termination_listener(self._lost)
        await driver.add_listener(CHANNEL, self._notified)
        self._driver = driver

    def _notified(self, _connection: object, _pid: int, _channel: str, _payload: str) -> None:
        self._heard = time.monotonic()
        self._on_signal()

    def _lost(self, _connection: object) -> None:
        self._on_signal()

    async def _drop(self) -> None:
        """Let go of the connection, whatever state it is in."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is None:
            return
        try:
            async with asyncio.timeout(CONNECT_WAIT):
                await connection.close()
        except Exception:
            with contextlib.suppress(Exception):
                await connection.invalidate()

    async def close(self) -> None:
        """Stop listening and close the connection (the feed stopping, or shutdown)."""
        await self._drop()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()
