"""`nettrace hardstop on|off`: the operator's switch (persisted; while on, exits only).

It needs the ledger and nothing else: no broker, no keys, no network. Turning it off is refused
(exit 1) while a Rule 1 trigger still holds; `--reset-peak` re-bases the drawdown peak on today's
equity first (audited). The equity floor cannot be reset. When the audit log cannot be written the
switch still flips; its record waits in the ledger and one warning line says so.
"""

from __future__ import annotations

import argparse
import sys

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hardstop", help="turn HARDSTOP on (exits only, COLD/WARM paused) or off")
    p.add_argument("state", choices=("on", "off"), help="on: exits only; off: refused while a Rule 1 trigger holds")
    p.add_argument("--reason", default="", help="why (goes to the audit log)")
    p.add_argument("--reset-peak", action="store_true",
                   help="with off: re-base the drawdown peak on current equity (audited)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.execution.risk import gate_from_settings
    from nettrace_dagster.ledger.accounting import AccountModeError  # heavy: only when this command runs

    if args.reset_peak and args.state == "on":
        raise UsageError("--reset-peak only goes with 'off'")
    try:
        gate = gate_from_settings(load_settings())
    except AccountModeError as exc:
        raise UsageError(str(exc)) from None
    result = gate.set_hardstop(args.state == "on", args.reason or f"nettrace hardstop {args.state}",
                               reset_peak=args.reset_peak, by="cli")
    ok = result.on == (args.state == "on")
    payload = {"hardstop": result.on, "changed": result.changed, "ok": ok, "reasons": list(result.reasons),
               "audit_pending": result.audit_pending}
    human = f"HARDSTOP {'on' if result.on else 'off'}" + ("" if result.changed else " (unchanged)") + (
        "" if ok else ": " + "; ".join(result.reasons))
    emit(payload, args.json, human)
    if result.audit_pending:
        print(f"nettrace hardstop: warning: {result.audit_error or 'audit log unwritable'}; "
              f"{result.audit_pending} record(s) kept in the ledger until it can be written", file=sys.stderr)
    return 0 if ok else 1
