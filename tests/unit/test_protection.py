"""The benchmark's comparison parts are injected, never switched on, and a production server
refuses every one of them (issue 13, item 7)."""

from __future__ import annotations

import dataclasses

import pytest

from api.protection import Protection
from api.settings import Settings
from authz.policy import AllowAllPolicy
from tests.bench.stand_in import DiscardingAccessLog, StandInSealer, unprotected

PRODUCTION = Settings.from_env({"XINQIAO_MODE": "production"})
DEVELOPMENT = Settings.from_env({})


def test_the_standard_parts_run_anywhere() -> None:
    Protection().check(PRODUCTION)
    Protection().check(DEVELOPMENT)


@pytest.mark.parametrize(
    "change",
    [
        {"policy": AllowAllPolicy()},
        {"sealer": StandInSealer},
        {"access_log": DiscardingAccessLog},
    ],
)
def test_production_refuses_any_comparison_part(change: dict[str, object]) -> None:
    parts = dataclasses.replace(Protection(), **change)  # type: ignore[arg-type]  # one part each
    assert not parts.standard
    with pytest.raises(SystemExit, match="never production"):
        parts.check(PRODUCTION)
    parts.check(DEVELOPMENT)


def test_the_benchmark_mode_is_all_three() -> None:
    parts = unprotected()
    assert isinstance(parts.policy, AllowAllPolicy)
    assert parts.sealer is StandInSealer and parts.access_log is DiscardingAccessLog
