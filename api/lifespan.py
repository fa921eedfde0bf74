"""What the server does when it starts and when it stops (the ASGI lifespan).

Start: refuse to serve with the wrong key-encryption key (checked against the database before
any request), record that the check passed (``app.state.keys_verified``, which ``/readyz``
reads), and start the in-server scheduler (escalating overdue alerts, ``api.jobs``) and the
notification delivery worker (``api.delivery``) if configured.
Stop, within bounds: ask both loops to end between ticks, cancel one still busy after
``SHUTDOWN_WAIT`` and give its teardown as long again, close the live-alert feed, and always
dispose of the engine and flush telemetry, whatever failed before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from api import channels, delivery
from api.jobs import run_forever, units_without_anyone_to_act
from api.keyring import KeyProblem
from api.keyring import verify as verify_keys
from api.live import SHUTDOWN_WAIT, AlertFeed
from api.settings import Settings
from api.telemetry import Telemetry
from domain.keys import KeyRing

log = logging.getLogger("xinqiao.api")


class Lifespan:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        keys: KeyRing,
        settings: Settings,
        telemetry: Telemetry,
        feed: AlertFeed,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.settings = settings
        self.telemetry = telemetry
        self.feed = feed

    @asynccontextmanager
    async def __call__(self, app: Starlette) -> AsyncIterator[None]:
        try:
            await verify_keys(self.engine, self.keys)  # refuses the wrong key before serving
        except KeyProblem as problem:
            log.error("refusing to start: %s", problem)
            raise RuntimeError(str(problem)) from None
        app.state.keys_verified = True
        await self._warn_about_escalation_paths()
        stop = asyncio.Event()
        loops = {t for t in (self._start_scheduler(stop), self._start_delivery(stop)) if t}
        yield
        try:
            stop.set()  # the background loops end between queries, then the engine goes
            if loops:
                _, pending = await asyncio.wait(loops, timeout=SHUTDOWN_WAIT)
                if pending:  # stuck in a tick: cancel, and give its teardown a bounded wait
                    for task in pending:
                        task.cancel()
                    await asyncio.wait(pending, timeout=SHUTDOWN_WAIT)
            await self.feed.aclose()
        finally:
            await self.engine.dispose()
            self.telemetry.shutdown()

    async def _warn_about_escalation_paths(self) -> None:
        """An operator hears at start-up about units whose alerts could reach nobody able to
        act (``xinqiao jobs check-paths`` lists them); serving goes on, the rest still works."""
        try:
            stranded = await units_without_anyone_to_act(self.engine)
        except Exception as problem:  # a check, never a reason to refuse to start
            log.warning("escalation paths not checked: %s", type(problem).__name__)
            return
        if stranded:
            log.warning(
                "%d units can receive alerts but nobody on their escalation path may act on "
                "them; run `xinqiao jobs check-paths` (add a duty officer or staff them)",
                len(stranded),
            )

    def _start_scheduler(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        """The escalation loop, reporting each tick's count to the escalation counter; none
        when ``scheduler_seconds`` is not positive (tests, and servers left to cron)."""
        if self.settings.scheduler_seconds > 0:
            return asyncio.create_task(
                run_forever(
                    self.engine,
                    self.settings.scheduler_seconds,
                    self.settings.audit_hash,
                    self.settings.ack_deadlines,
                    on_escalated=self.telemetry.escalations.add,
                    stop=stop,
                )
            )
        return None

    def _start_delivery(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        """The notification delivery loop over the configured channels; none when
        ``notify.every_seconds`` is not positive (tests, and servers left to cron)."""
        notify = self.settings.notify
        if notify.every_seconds <= 0:
            return None
        senders = channels.from_settings(notify)
        if not senders:
            log.warning("no notification channel configured: alerts reach browsers only")
        worker = delivery.Delivery.from_settings(
            self.engine,
            senders,
            notify,
            hash_alg=self.settings.audit_hash,
            deadlines=self.settings.ack_deadlines,
        )
        return asyncio.create_task(delivery.run_forever(worker, notify.every_seconds, stop))
