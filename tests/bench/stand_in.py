"""The benchmark's comparison parts (``Protection`` in ``api/protection.py``): an allow-all
policy, a sealer that opens nothing (sealed fields are served as stand-ins of their length and no
data key is unwrapped, so the run prices decryption without disclosing anything), and an access
log that keeps nothing. Injected by ``tests/bench/serve.py``; production refuses them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.protection import Protection
from audit.log import RequestAccessLog
from authz.gate.sealer import Sealer
from authz.policy import AllowAllPolicy


class StandInSealer(Sealer):
    async def load_keys(self, rows: Sequence[Any]) -> None:
        return None

    def open(self, row: Any, attr: str) -> Any:
        self._stats.fields_opened += 1
        sealed = getattr(row, attr)
        if sealed is None or attr in row.opened_as:
            return None
        return "x" * max(0, len(sealed) - 38)  # header, nonce and tag (domain.encryption)


class DiscardingAccessLog(RequestAccessLog):
    async def flush(self, session: AsyncSession) -> int:
        self.pending.clear()
        return 0


def unprotected() -> Protection:
    return Protection(AllowAllPolicy(), sealer=StandInSealer, access_log=DiscardingAccessLog)
