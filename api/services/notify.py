"""Notifications outside the browser: every place that creates an alert calls ``enqueue_for_alert``
(or ``enqueue_for_alerts`` for a batch) right after inserting it, under the permit the alert was
written with.

The outbox rows go into the request's transaction, so an alert and its notifications commit or
roll back together: a mutation that fails leaves no message to send about an alert that does
not exist. The rows hold no personal data (``domain.notifications``); they are still written
through the gate, under the alert's permit, and logged as a write on the alert, so the access
log shows who caused which units to be messaged.
"""

from __future__ import annotations

from collections.abc import Sequence

from authz.entities import Entity
from authz.gate import Gate, Permit
from domain import models as m
from domain.notifications import Channel, notifications_for

ACTION = "notify"


async def enqueue_for_alert(gate: Gate, permit: Permit, alert: m.Alert) -> list[int]:
    """The notifications for one alert just inserted (it must have its id)."""
    return await enqueue_for_alerts(gate, permit, [alert])


async def enqueue_for_alerts(gate: Gate, permit: Permit, alerts: Sequence[m.Alert]) -> list[int]:
    """One pending notification per alert per channel its target unit has a contact on; none
    for a unit without contacts. Returns the new rows' ids."""
    if not alerts:
        return []
    t = m.AlertTarget
    addressed = await gate.rows_where(
        permit, t, t.alert_id.in_([a.id for a in alerts]), columns=[t.alert_id, t.unit_id]
    )
    units_of: dict[int, set[int]] = {a.id: {a.target_unit_id} for a in alerts}
    for _, alert_id, unit_id in addressed:
        units_of[alert_id].add(unit_id)
    c = m.UnitContact
    units = sorted(set().union(*units_of.values()))
    found = await gate.rows_where(permit, c, c.unit_id.in_(units), columns=[c.unit_id, c.channel])
    channels: dict[int, set[Channel]] = {}
    for _, unit_id, channel in found:
        channels.setdefault(unit_id, set()).add(Channel(channel))
    rows = notifications_for(alerts, channels, gate.now, units_of)
    if not rows:
        return []
    for row in rows:
        gate.add(permit, row)
    await gate.flush()
    by_alert: dict[int, list[str]] = {}
    for row in rows:
        by_alert.setdefault(row.alert_id, []).append(f"notification:{row.channel.value}")
    for alert in alerts:
        if alert.id in by_alert:
            gate.record_write(
                permit,
                Entity.ALERT,
                alert.id,
                by_alert[alert.id],
                ACTION,
                person_id=alert.person_id,
            )
    return [row.id for row in rows]
