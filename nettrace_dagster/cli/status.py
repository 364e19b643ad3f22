"""`nettrace status [--json]`: money, positions, rules, orders and the coordinator, from the ledger."""

from __future__ import annotations

import argparse
from typing import Any

from nettrace_dagster.cli import UsageError, emit, table
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
    """Aligned text: one label per line, tables for positions and strategies (never a dict)."""
    r = st["rules"]
    may_enter = r["entries_allowed"] and r.get("strategies_may_enter", True)
    orders = ", ".join(f"{n} {k}" for k, n in sorted(st["orders"]["by_status"].items())) or "none"
    rows = [
        ("account", f"{st['mode']} account {st['account']} ({st['broker']})"),
        ("ledger", st["ledger"]),
        ("equity", f"${st['equity']:.2f}  cash ${st['cash']:.2f}  principal ${st['principal']:.2f}"),
        ("risk", f"peak ${r['peak_equity']:.2f}  drawdown {r['drawdown']:.1%}  day P&L ${r['daily_pnl']:+.2f}"),
        ("HARDSTOP", "ON: " + st["hardstop"]["reason"] if st["hardstop"]["on"] else "off"),
        ("entries", "allowed" if may_enter else "blocked: " + "; ".join(r["blocked_by"])),
        ("free capital", f"${r['free_capital']:.2f} (reserve floor ${r['reserve_floor']:.2f}, locked profit "
                         f"${r['locked_profit']:.2f}, principal {'locked' if r['principal_locked'] else 'not locked'})"),
        ("orders", orders),
        ("reservations", f"{st['reservations']['active']} (${st['reservations']['amount']:.2f})"),
    ]
    if st["audit"]["pending"]:
        rows.append(("audit", f"{st['audit']['pending']} record(s) waiting in the ledger: {st['audit']['error']}"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if st["positions"]:
        lines += ["", "positions", *table(
            ["strategy", "symbol", "qty", "mark", "unrealised"],
            [[p["strategy"], p["symbol"], f"{p['qty']:.8g}", f"{p['mark_price']:.6g}",
              f"${p['unrealised_pnl']:+.2f}"] for p in st["positions"]])]
    if st["strategies"]:
        lines += ["", "strategies", *table(
            ["strategy", "status", "trades", "win rate", "net"],
            [[s["strategy"], s["status"], str(s["trades"]), f"{s['win_rate']:.0%}", f"${s['net_pnl']:+.2f}"]
             for s in st["strategies"]])]
    return "\n".join(lines)
