"""The portfolio as data: the equity curve in market time (from the ledger's fills and the
candles), and a one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import select

from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.ledger.accounting import HARDSTOP
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Capital, Fill, Flag, Order

MARKET_SCHEMA = {"timestamp": pl.Datetime("ms", "UTC"), "equity": pl.Float64, "cash": pl.Float64,
                 "positions_value": pl.Float64, "drawdown": pl.Float64}
TRADES_SCHEMA = {"timestamp": pl.Datetime("ms", "UTC"), "strategy": pl.String, "symbol": pl.String,
                 "kind": pl.String, "qty": pl.Float64, "price": pl.Float64, "equity": pl.Float64}


@dataclass
class MarketCurve:
    """The account in market time: `curve` has one row per bar from the first traded bar on (the
    first row is the starting capital at that bar, before its fills), valued at the bars' closes;
    `trades` one row per fill at its bar's time; `hardstop` when (in market time) the kill switch
    latched, if it is on. `unplaced` counts fills whose bar time is unknown (an order written
    before NetTrace recorded it, whose bar is no longer among the candles), which the curve leaves out."""

    principal: float
    curve: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=MARKET_SCHEMA))
    trades: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TRADES_SCHEMA))
    hardstop: datetime | None = None
    hardstop_reason: str = ""
    unplaced: int = 0


def market_equity_curve(ledger: Ledger, account: str, candles: dict[str, pl.DataFrame]) -> MarketCurve:
    """Replay the account's fills at the bar times they were decided on, from its starting
    capital (`principal`), and value cash + positions at every bar's close (each symbol's latest
    close at or before the bar; a symbol without candles is valued at its last fill price)."""
    with ledger.read() as s:
        cap = s.get(Capital, account)
        if cap is None:
            return MarketCurve(principal=0.0)
        principal = float(cap.principal)
        rows = [SimpleNamespace(**r._asdict()) for r in s.execute(
            select(Order.bar_ms, Order.client_order_id, Order.strategy, Order.symbol, Order.side, Order.kind,
                   Order.fee_base, Order.filled_qty, Fill.qty, Fill.price, Fill.fee, Fill.ts, Fill.id)
            .join(Fill, Fill.order_id == Order.id).where(Order.account == account))]
        orders = list(s.execute(select(Order.created_at, Order.bar_ms).where(
            Order.account == account, Order.bar_ms.is_not(None)).order_by(Order.created_at)))
        flag = s.get(Flag, HARDSTOP)
        latched = (float(flag.updated_at), flag.reason) if flag is not None and flag.on else None
    recovered = _recover_bar_times([r for r in rows if r.bar_ms is None], account, candles)
    for r in rows:
        r.bar_ms = recovered.get(r.client_order_id) if r.bar_ms is None else r.bar_ms
    placed = sorted((r for r in rows if r.bar_ms is not None), key=lambda r: (r.bar_ms, r.ts, r.id))
    out = MarketCurve(principal=principal, unplaced=len(rows) - len(placed))
    if not placed:
        return out
    t0 = int(placed[0].bar_ms)
    symbols = sorted({r.symbol for r in placed})
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    grid = [np.array([int(r.bar_ms) for r in placed], dtype=np.int64)]
    for sym in symbols:
        frame = candles.get(sym)
        if frame is not None and frame.height:
            ts = frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
            closes[sym] = (ts, frame["close"].to_numpy().astype(float))
            grid.append(ts[ts >= t0])
    times = np.unique(np.concatenate(grid))
    cash_delta = np.zeros(len(times))
    qty_delta = {sym: np.zeros(len(times)) for sym in symbols}
    last_price = {sym: 0.0 for sym in symbols}
    trades: list[dict[str, Any]] = []
    for r in placed:
        i = int(np.searchsorted(times, int(r.bar_ms)))
        notional = r.qty * r.price
        if r.side == "buy":
            fee_base = r.fee_base * r.qty / r.filled_qty if r.filled_qty else 0.0
            cash_delta[i] -= notional + r.fee - fee_base * r.price
            qty_delta[r.symbol][i] += r.qty - fee_base
        else:
            cash_delta[i] += notional - r.fee
            qty_delta[r.symbol][i] -= r.qty
        last_price[r.symbol] = r.price
        trades.append({"timestamp": int(r.bar_ms), "strategy": r.strategy, "symbol": r.symbol,
                       "kind": r.kind, "qty": r.qty, "price": r.price})
    cash = principal + np.cumsum(cash_delta)
    positions = np.zeros(len(times))
    for sym in symbols:
        held = np.maximum(np.cumsum(qty_delta[sym]), 0.0)  # rounding never makes a short
        if sym in closes:
            ts, close = closes[sym]
            i = np.searchsorted(ts, times, side="right") - 1
            price = np.where(i >= 0, close[np.clip(i, 0, None)], last_price[sym])
        else:
            price = np.full(len(times), last_price[sym])
        positions += held * price
    equity = np.concatenate([[principal], cash + positions])
    stamps = np.concatenate([[t0], times])
    peak = np.maximum.accumulate(equity)
    out.curve = pl.DataFrame({
        "timestamp": stamps, "equity": equity, "cash": np.concatenate([[principal], cash]),
        "positions_value": np.concatenate([[0.0], positions]),
        "drawdown": np.where(peak > 0, 1 - equity / np.where(peak > 0, peak, 1), 0.0),
    }, schema={**MARKET_SCHEMA, "timestamp": pl.Int64}).with_columns(pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
    for t in trades:
        t["equity"] = float(equity[1 + int(np.searchsorted(times, t["timestamp"]))])
    out.trades = pl.DataFrame(trades, schema={**TRADES_SCHEMA, "timestamp": pl.Int64}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
    if latched is not None:
        # The switch latched at a wall-clock time. In market time: after every order, the latest
        # bar; otherwise the bar of the last order written before it (or the first traded bar).
        before = [int(b) for created, b in orders if created <= latched[0]]
        at = int(stamps[-1]) if len(before) == len(orders) else (before[-1] if before else t0)
        out.hardstop = datetime.fromtimestamp(at / 1000, UTC)
        out.hardstop_reason = latched[1] or ""
    return out


def _recover_bar_times(rows: list[Any], account: str, candles: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Client order id → bar time for orders written before the bar time was recorded: the
    trader keys an order by its bar's time (`Intent.key`), so the candle whose key gives the
    order's client order id is its bar. Orders whose bar is not among `candles` stay unknown."""
    wanted = {r.client_order_id for r in rows}
    found: dict[str, int] = {}
    for strategy, symbol, kind in sorted({(r.strategy, r.symbol, r.kind) for r in rows}):
        frame = candles.get(symbol)
        if frame is None or not frame.height:
            continue
        for ms in frame["timestamp"].dt.epoch("ms").to_list():
            key = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%S")
            coid = Intent(strategy, symbol, kind, 1.0, key, account=account).client_order_id
            if coid in wanted:
                found[coid] = int(ms)
    return found


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
