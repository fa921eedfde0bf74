"""The gate's view of telemetry: a span around a unit of its work, or nothing.

``authz`` must not depend on the OpenTelemetry SDK (only ``api`` does; see the import contracts in
pyproject.toml), so the gate is handed something with this shape: ``api.telemetry.Telemetry``
in the server, ``NO_PROBE`` otherwise. Spans are per row load and per key batch, never per field.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

AttributeValue = str | int | float | bool


class Probe(Protocol):
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[MutableMapping[str, AttributeValue]]: ...


class _NoProbe:
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[MutableMapping[str, AttributeValue]]:
        return nullcontext({})


NO_PROBE: Probe = _NoProbe()
