"""Live alerts over graphql-transport-ws: one feed per process, one privacy decision per delivery.

* ``AlertFeed`` reads the alerts table for rows routed (raised or escalated) since its watermark,
  once per process whatever the number of subscribers, and hands the ids to every subscriber.
  Reading the database, rather than a message bus, sees alerts raised by any process (the
  scheduler, a cron ``jobs run-once``, another server) with no extra infrastructure. When to read:
  on PostgreSQL, as soon as a notification says an alert was routed (``api.alert_signal``: the
  routing transaction sends ``NOTIFY`` with the alert's id, and the feed ``LISTEN``s on a
  dedicated connection), and at a slow safety interval in case a notification was lost; on
  SQLite (one embedded process), and on PostgreSQL while the listening connection is down, every
  ``every_seconds``. The cost is one indexed query per wake-up or interval per process.
* ``LiveConnection`` is a WebSocket's context. It carries the subject authenticated at
  ``connection_init``; each delivery runs in a fresh ``RequestContext`` (its own session, gate and
  access log), so what a subscriber receives is decided and logged exactly as a read over HTTP.
  Queries and mutations are refused on the socket: they go over HTTP, through the guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.exceptions import StrawberryGraphQLError

from api.alert_signal import Listener
from api.context import RequestContext
from api.graphql.loaders import Loaders
from api.settings import Settings
from audit.log import RequestAccessLog
from authz.gate import Gate
from authz.subject import Subject
from domain.alerts import Alert, AlertStatus
from domain.base import utcnow
from domain.session import system_session

log = logging.getLogger("xinqiao.live")

OVERLAP = timedelta(minutes=5)
"""Re-read this far behind the watermark: ``routed_at`` is when a request started, so a
transaction that commits late (a large import) or a process whose clock lags is still seen, and
delivered once (the feed remembers what it sent within the window). Server clocks must agree
within this (NTP)."""

PAGE = 500
QUEUE_SIZE = 256
RECHECK = 5.0
"""Seconds between re-reading a socket's subject (revoked, disabled, roles changed)."""
SHUTDOWN_WAIT = 5.0
"""Seconds shutdown waits for the feed's last poll before cancelling it."""


@dataclass(frozen=True, slots=True)
class Routed:
    alert_id: int
    escalated: bool


class AlertFeed:
    """Alert ids as they are routed, fanned out to this process's subscribers."""

    def __init__(
        self, engine: AsyncEngine, every_seconds: float, safety_seconds: float = 30.0
    ) -> None:
        self.engine = engine
        self.every = every_seconds
        """Poll interval without notifications (SQLite; PostgreSQL while not listening)."""
        self.safety = safety_seconds
        """Poll interval while notifications wake the feed: only a lost one waits this long."""
        self.notified = engine.dialect.name == "postgresql"
        """Whether this database can wake the feed (PostgreSQL ``LISTEN``)."""
        self.listener: Listener | None = None
        """The running feed's listening connection (PostgreSQL), for health and tests."""
        self._queues: set[asyncio.Queue[list[Routed]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        """Set by a notification, and by stopping: the feed's wait ends early."""
        self._running: set[asyncio.Task[None]] = set()
        """Feed tasks not yet finished (one stopping may overlap the next one starting)."""
        self._watermark = utcnow()
        self._sent: dict[tuple[int, datetime], datetime] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[list[Routed]]]:
        queue: asyncio.Queue[list[Routed]] = asyncio.Queue(QUEUE_SIZE)
        if not self._queues:
            self._watermark = utcnow()
            self._sent.clear()
        self._queues.add(queue)
        if self._task is None or self._task.done():
            # A context of its own: not the first subscriber's (its trace id and span would
            # otherwise label every poll of the feed for as long as it runs).
            self._stop, self._wake = asyncio.Event(), asyncio.Event()
            self._task = asyncio.create_task(
                self._run(self._stop, self._wake), context=contextvars.Context()
            )
            self._running.add(self._task)
            self._task.add_done_callback(self._running.discard)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
            if not self._queues:
                # Asked to stop between polls, not cancelled: a cancel landing in the middle
                # of a query leaves the connection to be torn down under a second cancel, and
                # with aiosqlite that teardown can wait forever.
                self._stop.set()
                self._wake.set()
                self._task = None

    async def aclose(self) -> None:
        """Stop the feed and wait for its last poll (at shutdown, before the engine goes)."""
        self._queues.clear()
        self._stop.set()
        self._wake.set()
        self._task = None
        running = list(self._running)
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=SHUTDOWN_WAIT)
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=SHUTDOWN_WAIT)
            if stuck:
                log.error("live alert feed did not stop; %d task(s) left", len(stuck))

    async def _run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        listener = Listener(self.engine, wake.set) if self.notified else None
        self.listener = listener
        try:
            if listener is not None:  # listening before the first read: nothing falls between
                await listener.ensure(ping_after=self.safety)
            # What was routed before anyone subscribed is not news: mark it sent, deliver nothing.
            with contextlib.suppress(Exception):
                await self.poll(stop)
            while self._queues and not stop.is_set():
                wake.clear()  # a notification arriving during the read wakes the next one
                try:
                    batch = await self.poll(stop)
                    if stop.is_set():  # a feed started since serves the subscribers now
                        break
                    for queue in list(self._queues):
                        if batch:
                            _offer(queue, batch)
                except Exception:
                    log.exception("live alert feed poll failed; will retry")
                interval = self.every
                if listener is not None and await listener.ensure(ping_after=self.safety):
                    interval = self.safety
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await wake.wait()
        finally:
            if listener is not None:
                if self.listener is listener:
                    self.listener = None
                await listener.close()

    async def poll(self, stop: asyncio.Event | None = None) -> list[Routed]:
        """Alerts routed since the watermark (minus the overlap), each delivered once, read in
        keyset pages so a bulk import of thousands does not starve what follows it.

        A feed told to ``stop`` while it read changes nothing: the feed that replaced it keeps
        the watermark, and an alert this one read is still news to that one."""
        since = self._watermark - OVERLAP
        rows: list[Any] = []
        async with system_session(self.engine, reason="live alert feed: ids only") as s:
            after: tuple[datetime, int] | None = None
            while True:
                stmt = select(Alert.id, Alert.routed_at, Alert.status).where(
                    Alert.routed_at > since
                )
                if after is not None:
                    stmt = stmt.where(
                        or_(
                            Alert.routed_at > after[0],
                            and_(Alert.routed_at == after[0], Alert.id > after[1]),
                        )
                    )
                page = (await s.execute(stmt.order_by(Alert.routed_at, Alert.id).limit(PAGE))).all()
                rows += page
                if len(page) < PAGE:
                    break
                after = (page[-1].routed_at, page[-1].id)
        if stop is not None and stop.is_set():
            return []
        out: list[Routed] = []
        for alert_id, routed_at, status in rows:
            key = (alert_id, routed_at)
            if key in self._sent:
                continue
            self._sent[key] = routed_at
            out.append(Routed(alert_id, status == AlertStatus.ESCALATED))
            self._watermark = max(self._watermark, routed_at)
        # Forget only what can no longer be re-read (older than the window).
        horizon = self._watermark - OVERLAP
        self._sent = {k: at for k, at in self._sent.items() if at > horizon}
        return out


def _offer(queue: asyncio.Queue[list[Routed]], batch: list[Routed]) -> None:
    """A subscriber that stops reading loses the oldest batches, never blocks the feed."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(batch)


class OverHttpOnly(StrawberryGraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "WebSocket 只用于订阅；查询与变更请走 HTTP (queries and mutations go over HTTP)",
            extensions={"code": "BAD_REQUEST"},
        )


class SessionExpired(StrawberryGraphQLError):
    def __init__(self) -> None:
        super().__init__(
            "登录已过期，请用新令牌重新订阅 (token expired; reconnect with a fresh token)",
            extensions={"code": "UNAUTHENTICATED"},
        )


_delivery: ContextVar[RequestContext | None] = ContextVar("xinqiao_delivery", default=None)
"""The delivery being executed in this subscription's task (each operation has its own task)."""


@dataclass
class LiveConnection:
    """A WebSocket's context: who is connected, and a fresh request context per delivery."""

    settings: Settings
    feed: AlertFeed
    new_context: Callable[[Subject], RequestContext]
    subject: Subject = field(default_factory=Subject.anonymous)
    connection_params: dict[str, Any] | None = None
    request_id: str = "ws"
    header: str | None = None
    """The upgrade request's Authorization header, if the client could send one."""
    reload: Callable[[], Awaitable[Subject | None]] | None = None
    """Re-reads the subject from its token (None: revoked, disabled, expired)."""
    _checked: float = 0.0

    async def still_allowed(self) -> bool:
        """Whether the socket's subject may still receive alerts, re-read at most every few
        seconds: sign-out, deactivation and role changes reach a socket as they reach HTTP."""
        if self.expired:
            return False
        if self.reload is None or time.monotonic() - self._checked < RECHECK:
            return True
        subject = await self.reload()
        self._checked = time.monotonic()
        if subject is None or subject.staff_id is None:
            return False
        self.subject = subject
        return True

    def begin(self) -> RequestContext:
        context = self.new_context(self.subject)
        _delivery.set(context)
        return context

    @staticmethod
    def current() -> RequestContext | None:
        return _delivery.get()

    @staticmethod
    def end() -> None:
        _delivery.set(None)

    @property
    def expired(self) -> bool:
        expires = self.subject.token_expires
        return expires is not None and time.time() >= expires

    # What resolvers use, from the delivery in progress; nothing outside a delivery.

    def _delivering(self) -> RequestContext:
        context = _delivery.get()
        if context is None:
            raise OverHttpOnly()
        return context

    @property
    def gate(self) -> Gate:
        return self._delivering().gate

    @property
    def loaders(self) -> Loaders:
        return self._delivering().loaders

    @property
    def access_log(self) -> RequestAccessLog:
        return self._delivering().access_log
