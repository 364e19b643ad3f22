"""`nettrace hardstop on|off`: the operator's switch (persisted; while on, exits only).

Turning it off is refused (exit 1) while a Rule 1 trigger still holds; `--reset-peak` re-bases
the drawdown peak on today's equity first (audited). The equity floor cannot be reset.
"""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.cli.status import execution_from_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hardstop", help="turn HARDSTOP on (exits only, COLD/WARM paused) or off")
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("--reason", default="", help="why (goes to the audit log)")
    p.add_argument("--reset-peak", action="store_true",
                   help="with off: re-base the drawdown peak on current equity (audited)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.execution.broker import BrokerError  # heavy: only when this command runs

    if args.reset_peak and args.state == "on":
        raise UsageError("--reset-peak only goes with 'off'")
    try:
        result = execution_from_settings().hardstop(args.state == "on", args.reason or f"nettrace hardstop {args.state}",
                                                    reset_peak=args.reset_peak, by="cli")
    except BrokerError as exc:
        raise UsageError(str(exc)) from None
    ok = result.on == (args.state == "on")
    payload = {"hardstop": result.on, "changed": result.changed, "ok": ok, "reasons": list(result.reasons)}
    human = f"HARDSTOP {'on' if result.on else 'off'}" + ("" if result.changed else " (unchanged)") + (
        "" if ok else ": " + "; ".join(result.reasons))
    emit(payload, args.json, human)
    return 0 if ok else 1
