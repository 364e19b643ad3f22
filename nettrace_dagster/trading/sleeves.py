"""Sleeves: several parameter sets traded side by side on the same prices, each in its own
ledger account (own cash, positions, Rule 3 verdicts, exit-rule state and P&L), every order
through the same execution layer (`ExecutionEngine`: `RiskGate`, reservations, broker, ledger).

The FULL set trades the account itself with its own engine (paper or live). A promotion
candidate's sleeves (and the baseline twin each one is compared with) are paper accounts named
`<account>:c<id>:<role>`: they never place a real order, and a Rule 1 trigger in one of them
latches that sleeve's own flag (`hardstop_scope="account"`), never the account's HARDSTOP. The
global HARDSTOP still stops every sleeve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import select

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger import accounting as acc
from nettrace_dagster.ledger.models import TraderCursor
from nettrace_dagster.trading.trader import TickReport, Trader


@dataclass(frozen=True)
class Sleeve:
    """One set to trade beside the FULL set: `account` is its own; `capital` funds it once."""

    account: str
    role: str  # warm | warm_baseline | limited | limited_baseline
    param_set: dict[str, Any]
    capital: float
    candidate_id: int | None = None
    strategy_files: dict[str, dict[str, str]] = field(default_factory=dict)


def sleeve_engine(main: ExecutionEngine, sleeve: Sleeve) -> ExecutionEngine:
    """The sleeve's engine: the main engine's ledger, rules, costs and audit, a paper venue."""
    return ExecutionEngine(main.ledger, PaperBroker(main.ledger, main.costs), main.gate.base_rules, main.costs,
                           main.gate.audit_dir, sleeve.account, sleeve.capital, main.min_order_usd,
                           clock=main.clock, hardstop_scope="account")


def open_sleeve(main: ExecutionEngine, sleeve: Sleeve) -> None:
    """Fund the sleeve's account and start its cursor where the main account's is, so it trades
    the bars from now on beside the FULL set, never the history before it started."""
    with main.ledger.tx() as s:
        acc.ensure_account(s, sleeve.account, sleeve.capital, main.clock(), "paper")
        for cur in list(s.scalars(select(TraderCursor).where(TraderCursor.account == main.account))):
            if s.get(TraderCursor, (sleeve.account, cur.symbol)) is None:
                s.add(TraderCursor(account=sleeve.account, symbol=cur.symbol, last_bar_ms=cur.last_bar_ms))


def tick_sleeves(main: ExecutionEngine, coordinator: Coordinator, candles: dict[str, pl.DataFrame],
                 sleeves: list[Sleeve], catch_up_bars: int = 1, max_bar_age_s: float | None = None,
                 main_trader: Trader | None = None) -> dict[str, TickReport]:
    """One tick of the FULL set (the account) and then of every sleeve, on the same candles. A new
    sleeve starts at the account's cursor before this tick, so it trades exactly the bars the
    account trades from now on."""
    for sleeve in sleeves:
        open_sleeve(main, sleeve)
    reports = {main.account: (main_trader or Trader(main, coordinator, catch_up_bars=catch_up_bars,
                                                    max_bar_age_s=max_bar_age_s)).tick(candles)}
    for sleeve in sleeves:
        try:
            engine = sleeve_engine(main, sleeve)
            trader = Trader(engine, Coordinator(main.ledger, coordinator.audit.audit_dir, sleeve.account,
                                                clock=coordinator.clock),
                            list(sleeve.param_set["strategies"].items()), catch_up_bars, max_bar_age_s,
                            sleeve.param_set["portfolio"], sleeve.strategy_files)
            reports[sleeve.account] = trader.tick(candles)
        except Exception as exc:  # noqa: BLE001 - a broken candidate never stops the FULL set or the others
            reports[sleeve.account] = TickReport(ran=False, reasons=[f"{type(exc).__name__}: {exc}"[:300]])
    return reports


def sleeve_rows(main: ExecutionEngine, sleeves: list[Sleeve], reports: dict[str, TickReport]) -> list[dict[str, Any]]:
    """One row per sleeve for the UI: role, candidate, equity, P&L since it started, fills."""
    from nettrace_dagster.ledger.models import Capital

    rows = []
    with main.ledger.read() as s:
        for sl in sleeves:
            cap = s.get(Capital, sl.account)
            rep = reports.get(sl.account)
            rows.append({"account": sl.account, "role": sl.role, "candidate": sl.candidate_id,
                         "equity": round(cap.last_equity, 2) if cap else sl.capital,
                         "pnl": round(cap.last_equity - cap.principal, 4) if cap else 0.0,
                         "orders": sum((rep.counts() if rep else {}).values()),
                         "note": "; ".join(rep.reasons)[:80] if rep and not rep.ran else ""})
    return rows
