"""The parts that enforce privacy in every request: the policy, what opens sealed fields, and the
access log.

Production runs the standard parts (``Protection()``: the real policy, the ``Sealer``, the
``RequestAccessLog``). The benchmark prices the privacy layers by injecting other parts (an
allow-all policy, a stand-in sealer, a log that keeps nothing; ``tests/bench/stand_in.py``):
there is no switch for that in production code, and a production server refuses any part that is
not the standard one before anything else is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from api.settings import Settings
from audit.log import RequestAccessLog
from authz.gate.sealer import Sealer
from authz.policy import AllowAllPolicy, Policy


@dataclass(frozen=True)
class Protection:
    policy: Policy = field(default_factory=Policy)
    sealer: type[Sealer] = Sealer
    access_log: type[RequestAccessLog] = RequestAccessLog

    @property
    def standard(self) -> bool:
        return (
            not isinstance(self.policy, AllowAllPolicy)
            and self.sealer is Sealer
            and self.access_log is RequestAccessLog
        )

    def check(self, settings: Settings) -> None:
        """Stop a production server that would run without the real policy, decryption rules or
        access log."""
        if settings.production and not self.standard:
            raise SystemExit("the allow-all policy is for benchmarks and tests, never production")
