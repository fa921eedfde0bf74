"""Real ``xinqiao serve`` processes for tests: uvicorn on a loopback port, as ``make run`` starts it.

The in-process clients of the other API tests never go through uvicorn, so they cannot see what
only a real server does: which WebSocket implementation answers an upgrade, the ASGI lifespan,
several processes on one database. These start the installed command line as a subprocess on a
free port, wait (bounded) until ``/readyz`` answers, and stop it with SIGTERM (uvicorn's graceful
shutdown), killing it if that takes too long. What a server logged is added to the suite's
captured logs, so the end-of-session privacy scan reads it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import observability

XINQIAO = str(Path(sys.executable).with_name("xinqiao"))
START_WAIT = 60.0
"""Seconds a server may take to answer /readyz (imports, schema, key check) on a busy 2-core
machine; it takes 2-4 s on a quiet one."""
PR_SET_PDEATHSIG = 1
STOP_WAIT = 10.0
"""Seconds a server may take to shut down after SIGTERM before it is killed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_in: float
    """Seconds from launch to ready."""
    stopped_in: float | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def gql(
        self, token: str | None, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=self.http, timeout=30, trust_env=False) as client:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        assert response.status_code == 200, response.text[:500]
        body: dict[str, Any] = response.json()
        return body


def _launch(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [XINQIAO, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "XINQIAO_LOG_LEVEL": "INFO", **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return process, port


def _die_with_parent() -> None:
    """In the child before ``exec``: SIGTERM when the test run ends without its teardown (a
    timeout's ``os._exit``), so no server outlives the run (Linux's parent-death signal)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def start(env: dict[str, str], log_path: Path) -> Served:
    """A ready server, or an assertion with its output (never a hang: bounded by
    ``START_WAIT``). A port taken between choosing and binding it is tried again."""
    began = time.monotonic()
    for _attempt in range(3):
        process, port = _launch(env, log_path)
        served = Served(process, port, log_path, 0.0)
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while process.poll() is None and time.monotonic() - began < START_WAIT:
                try:
                    if (await client.get(f"{served.http}/readyz")).status_code == 200:
                        served.started_in = time.monotonic() - began
                        return served
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        if process.poll() is None:  # not ready in time
            stop(served)
            raise AssertionError(f"server not ready in {START_WAIT:.0f} s:\n{served.output()}")
        if "address already in use" not in served.output().lower():
            raise AssertionError(f"server exited with {process.returncode}:\n{served.output()}")
    raise AssertionError(f"no free port after three tries:\n{served.output()}")


def stop(served: Served) -> bool:
    """SIGTERM, then SIGKILL after ``STOP_WAIT``; whether it shut down cleanly (uvicorn ends
    its graceful shutdown by re-raising the signal: -SIGTERM is a clean exit, like 0). Its log
    joins the suite's."""
    began = time.monotonic()
    process = served.process
    killed = False
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            killed = True
            process.kill()
            process.wait(STOP_WAIT)
    served.stopped_in = time.monotonic() - began
    output = served.output()
    observability.LOGS.write(_readable(output))
    return (
        not killed
        and process.returncode in (0, -signal.SIGTERM)
        and "Application shutdown complete" in output
    )


def _readable(output: str) -> str:
    """JSON log lines with their escapes undone (a name logged as \\uXXXX must still be found)."""
    lines = []
    for line in output.splitlines():
        try:
            lines.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            lines.append(line)
    return "\n".join(lines) + "\n"
