"""Which privacy protection a process's requests run under: the policy, and whether the gate and
access log run at all.

It exists so that the benchmark's comparison mode (``create_app(unprotected=True)``: allow-all
policy, no access log, sealed fields served as stand-ins) enters the application in one place,
together with the rule that production never runs without the real policy. Everything after
``create_app`` receives a ``Protection`` and never the bare switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.settings import Settings
from authz.policy import AllowAllPolicy, Policy


@dataclass(frozen=True)
class Protection:
    policy: Policy
    unprotected: bool = False
    """The benchmark's floor for the privacy layers: no access events, no decryption."""

    @classmethod
    def choose(
        cls, settings: Settings, policy: Policy | None = None, *, unprotected: bool = False
    ) -> Protection:
        """The given policy (the real one by default), or the comparison mode's allow-all one;
        an allow-all policy stops a production server before anything else is loaded."""
        if unprotected:
            policy = AllowAllPolicy()
        if isinstance(policy, AllowAllPolicy) and settings.production:
            raise SystemExit("the allow-all policy is for benchmarks and tests, never production")
        return cls(policy=policy or Policy(), unprotected=unprotected)
