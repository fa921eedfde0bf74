"""Locust load for one GraphQL operation, closed loop (no think time).

The suite runs ``locust -f tests/bench/locustfile.py --headless ...`` once per operation and
server mode, with ``BENCH_OPERATION`` naming a JSON file that holds the request body (query and
variables) and the bearer token. One file per run keeps the load pure: the requests/s and
percentiles Locust reports are for that operation alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, task

SPEC: dict[str, Any] = json.loads(Path(os.environ["BENCH_OPERATION"]).read_text())


class Caller(FastHttpUser):
    """A client that sends the same operation back to back, as fast as the server answers."""

    wait_time = constant(0)

    @task
    def operation(self) -> None:
        headers = {"Authorization": f"Bearer {SPEC['token']}"}
        body = {"query": SPEC["query"], "variables": SPEC.get("variables") or {}}
        with self.client.post(
            "/graphql", json=body, headers=headers, name=SPEC["name"], catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif (response.json() or {}).get("errors"):
                response.failure("GraphQL errors")
