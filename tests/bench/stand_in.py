"""The benchmark's unprotected mode opens nothing: sealed fields are served as stand-ins of their
length and no data key is unwrapped, so the run prices decryption without disclosing anything.
Injected by ``tests/bench/serve.py``; production code has no switch for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authz.gate.sealer import Sealer


class StandInSealer(Sealer):
    async def load_keys(self, rows: Sequence[Any]) -> None:
        return None

    def open(self, row: Any, attr: str) -> Any:
        self._stats.fields_opened += 1
        sealed = getattr(row, attr)
        if sealed is None or attr in row.opened_as:
            return None
        return "x" * max(0, len(sealed) - 38)  # header, nonce and tag (domain.encryption)
