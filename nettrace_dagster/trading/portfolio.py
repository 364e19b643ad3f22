"""The portfolio as data: the equity curve from the ledger's marks, and a one-line summary."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import select

from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import EquityMark

CURVE_SCHEMA = {"timestamp": pl.Datetime("ms", "UTC"), "equity": pl.Float64, "cash": pl.Float64,
                "positions_value": pl.Float64, "drawdown": pl.Float64, "daily_pnl": pl.Float64,
                "hardstop": pl.Boolean}


def equity_curve(ledger: Ledger, account: str, limit: int = 20_000) -> pl.DataFrame:
    """The latest `limit` equity marks, oldest first."""
    with ledger.read() as s:
        rows = list(s.execute(select(EquityMark.ts, EquityMark.equity, EquityMark.cash, EquityMark.positions_value,
                                     EquityMark.drawdown, EquityMark.daily_pnl, EquityMark.hardstop)
                              .where(EquityMark.account == account).order_by(EquityMark.ts.desc()).limit(limit)))
    rows.reverse()
    data = {name: [r[i] for r in rows] for i, name in enumerate(CURVE_SCHEMA)}
    data["timestamp"] = [int(t * 1000) for t in data["timestamp"]]
    return pl.DataFrame(data, schema={**CURVE_SCHEMA, "timestamp": pl.Int64}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))


def summary_line(status: dict[str, Any], counts: dict[str, int], bars: int) -> str:
    rules = status["rules"]
    gain = status["equity"] / status["principal"] - 1 if status["principal"] else 0.0
    state = "HARDSTOP (exits only)" if status["hardstop"]["on"] else (
        "entries allowed" if rules["entries_allowed"] else "entries blocked: " + rules["blocked_by"][0])
    orders = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no orders"
    fired = sum(1 for s in status["strategies"] if s["status"] == "fired")
    judged = f"; {fired} strateg{'y' if fired == 1 else 'ies'} fired (Rule 3)" if fired else ""
    return (f"{status['mode']}: equity ${status['equity']:.2f} ({gain:+.2%}), {len(status['positions'])} position(s), "
            f"day P&L ${rules['daily_pnl']:+.2f}; {state}{judged}; tick: {bars} bar(s), {orders}")
