"""`nettrace status [--json]`: money, positions, rules, orders and the coordinator, from the ledger."""

from __future__ import annotations

import argparse
from typing import Any

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="account, positions, capital rules, orders and coordinator state")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `nettrace` call loads every command module.
    from nettrace_dagster.coordinator.core import Coordinator
    from nettrace_dagster.execution.risk import gate_from_settings
    from nettrace_dagster.ledger.accounting import AccountModeError
    from nettrace_dagster.ledger.db import redact

    settings = load_settings()
    try:  # the ledger alone: status works with no broker, no keys and no exchange
        gate = gate_from_settings(settings)
    except AccountModeError as exc:
        raise UsageError(str(exc)) from None
    status = {**gate.status(), "broker": "ccxt" if gate.mode == "live" else "paper"}
    status["coordinator"] = Coordinator(gate.ledger, None, gate.account).snapshot()
    status["ledger"] = redact(settings.ledger_url)
    emit(status, args.json, human(status))
    return 0


def human(st: dict[str, Any]) -> str:
    r = st["rules"]
    lines = [
        f"{st['mode']} account {st['account']} ({st['broker']}), ledger {st['ledger']}",
        f"  equity ${st['equity']:.2f}  cash ${st['cash']:.2f}  principal ${st['principal']:.2f}  "
        f"peak ${r['peak_equity']:.2f}  drawdown {r['drawdown']:.1%}  day P&L ${r['daily_pnl']:+.2f}",
        f"  HARDSTOP {'ON: ' + st['hardstop']['reason'] if st['hardstop']['on'] else 'off'}; entries "
        + ("allowed" if r["entries_allowed"] else "blocked: " + "; ".join(r["blocked_by"])),
        *([f"  audit: {st['audit']['pending']} record(s) waiting in the ledger: {st['audit']['error']}"]
          if st["audit"]["pending"] else []),
        f"  free capital ${r['free_capital']:.2f} (reserve floor ${r['reserve_floor']:.2f}, locked profit "
        f"${r['locked_profit']:.2f}, principal {'locked' if r['principal_locked'] else 'not locked'})",
        f"  orders: {st['orders']['by_status'] or 'none'}; reservations: {st['reservations']['active']} "
        f"(${st['reservations']['amount']:.2f})",
    ]
    lines += [f"  position {p['strategy']} {p['symbol']}: {p['qty']:.8g} @ {p['mark_price']:.6g} "
              f"(unrealised ${p['unrealised_pnl']:+.2f})" for p in st["positions"]]
    lines += [f"  strategy {s['strategy']}: {s['status']}, {s['trades']} trades, win rate {s['win_rate']:.0%}, "
              f"net ${s['net_pnl']:+.2f}" for s in st["strategies"]]
    return "\n".join(lines)
