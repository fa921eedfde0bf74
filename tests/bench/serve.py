"""One benchmark server: ``python -m tests.bench.serve --mode full|unprotected --port N``.

The suite (``tests.bench.suite``) starts one of these per mode, so the two modes are priced as
real deployments (one uvicorn worker over loopback TCP, the ASGI lifespan's key check run)
rather than in process. Configuration comes from the environment like ``xinqiao serve``; only
the mode differs: ``unprotected`` injects the comparison parts of ``tests.bench.stand_in`` (allow-all policy, no
access log, sealed fields served as same-length stand-ins, nothing decrypted).
"""

from __future__ import annotations

import argparse

import uvicorn

from api.app import create_app
from api.settings import Settings
from tests.bench.stand_in import unprotected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("full", "unprotected"), required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    protection = unprotected() if args.mode == "unprotected" else None
    app = create_app(Settings.from_env(), protection=protection)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,  # a log line per request would be priced into both modes
        server_header=False,
    )


if __name__ == "__main__":
    main()
