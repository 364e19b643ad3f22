"""`nettrace node --region R --port P`: one execution node (an HTTP service running the trading
loop of the release it is given; see nettrace_dagster/deploy/node.py)."""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    from nettrace_dagster.deploy import REGIONS

    p = sub.add_parser("node", help="run one execution node (HTTP: /health, /telemetry, POST /release)")
    p.add_argument("--region", required=True, choices=REGIONS, help="ewr is the primary; the others trade on paper")
    p.add_argument("--port", required=True, type=int, help="TCP port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--release", default=None, help="load this release at start (otherwise wait for POST /release)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.deploy import DeployError
    from nettrace_dagster.deploy.node import serve

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: expected 1 … 65535")
    try:
        serve(args.region, args.port, args.host, args.release)
    except DeployError as exc:
        raise UsageError(str(exc)) from None
    return 0
