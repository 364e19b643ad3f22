"""Backtests per (symbol, strategy, regime): one run over all bars, its per-bar returns and trades
attributed to the regime label of their bar. Splitting the returns rather than the bars keeps
every trade whole (a trade entered in BULL that ends in BEAR is one trade, not two half-trades).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.backtest.engine import BacktestResult, bar_returns, current_rules, run_backtest
from nettrace_dagster.backtest.metrics import periods_per_year
from nettrace_dagster.backtest.params import EngineParams
from nettrace_dagster.market.schema import infer_timeframe_seconds
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies import Strategy, get_strategy, params_in_force

REGIMES = ("BULL", "BEAR", "SIDEWAYS")
ALL = "ALL"

REPORT_SCHEMA = {
    "symbol": pl.String, "strategy": pl.String, "regime": pl.String, "bars": pl.Int64, "trades": pl.Int64,
    "total_return": pl.Float64, "sharpe": pl.Float64, "sortino": pl.Float64, "max_drawdown": pl.Float64,
    "win_rate": pl.Float64, "exposure": pl.Float64, "params": pl.String,
}


def held_mask(trades: pl.DataFrame, n: int) -> np.ndarray:
    """True at bars whose close finds a position open."""
    delta = np.zeros(n + 1, dtype=np.int64)
    entry = trades["entry_bar"].to_numpy()
    end = np.where(trades["exit_reason"].to_numpy() == "open", n, trades["exit_bar"].to_numpy())
    np.add.at(delta, entry, 1)
    np.add.at(delta, end, -1)
    return np.cumsum(delta[:n]) > 0


def _returns_metrics(r: np.ndarray, ppy: float) -> dict[str, float]:
    if r.size == 0:
        return {"total_return": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": 0.0}
    growth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], growth)))[1:]
    std = r.std(ddof=1) if r.size > 1 else 0.0
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    ann = math.sqrt(ppy)
    return {
        "total_return": float(growth[-1] - 1.0),
        "sharpe": float(r.mean() / std * ann) if std > 0 else 0.0,
        "sortino": float(r.mean() / down * ann) if down > 0 else 0.0,
        "max_drawdown": float(max(0.0, np.max(1.0 - growth / peak))),
    }


def metrics_by_regime(result: BacktestResult, labels: np.ndarray, ppy: float) -> list[dict[str, Any]]:
    """One row per regime present (plus ALL): returns, risk and trades attributed to the regime."""
    n = result.equity.shape[0]
    r = bar_returns(result.equity, result.params.initial_equity)
    held = held_mask(result.trades, n)
    trades = result.trades
    entry_regime = labels[trades["entry_bar"].to_numpy()] if trades.height else np.array([], dtype=object)
    closed = trades["exit_reason"].to_numpy() != "open" if trades.height else np.array([], dtype=bool)
    wins = trades["pnl"].to_numpy() > 0 if trades.height else np.array([], dtype=bool)
    rows = []
    for regime in (ALL, *REGIMES, "UNKNOWN"):
        mask = np.ones(n, dtype=bool) if regime == ALL else labels == regime
        bars = int(mask.sum())
        if bars == 0:
            continue
        in_regime = np.ones(trades.height, dtype=bool) if regime == ALL else entry_regime == regime
        closed_here = in_regime & closed
        rows.append({
            "regime": regime, "bars": bars, "trades": int(in_regime.sum()),
            **_returns_metrics(r[mask], ppy),
            "win_rate": float((wins & closed_here).sum() / closed_here.sum()) if closed_here.any() else 0.0,
            "exposure": float(held[mask].mean()),
        })
    return rows


def regime_labels(candles: pl.DataFrame, regimes: pl.DataFrame | None) -> np.ndarray:
    """The regime of each candle (by timestamp), "UNKNOWN" where there is none."""
    if regimes is None or regimes.height == 0:
        return np.full(candles.height, "UNKNOWN", dtype=object)
    joined = candles.select("timestamp").join(regimes.select("timestamp", "regime"), on="timestamp",
                                              how="left", maintain_order="left")
    return joined["regime"].fill_null("UNKNOWN").to_numpy().astype(object)


def backtest_symbols(candles: dict[str, pl.DataFrame], regimes: dict[str, pl.DataFrame] | None = None,
                     strategies: dict[str, dict[str, Any]] | None = None,
                     engine: EngineParams | None = None, rules: Rules | None = None,
                     ) -> tuple[pl.DataFrame, dict[tuple[str, str], BacktestResult]]:
    """Backtest every strategy on every symbol; the per-regime report and each full result.
    Entries are gated by `rules` (default: `current_rules()`, what the execution layer uses)."""
    strategies = strategies if strategies is not None else params_in_force()
    engine = engine or EngineParams()
    rules = rules if rules is not None else current_rules()
    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, str], BacktestResult] = {}
    for symbol in sorted(candles):
        df = candles[symbol]
        if df.height == 0:
            continue
        ppy = periods_per_year(infer_timeframe_seconds(df))
        labels = regime_labels(df, (regimes or {}).get(symbol))
        for name, params in strategies.items():
            strategy: Strategy = get_strategy(name)
            result = run_backtest(df, strategy, params, engine, ppy=ppy, rules=rules)
            results[(symbol, name)] = result
            for row in metrics_by_regime(result, labels, ppy):
                rows.append({"symbol": symbol, "strategy": name, **row,
                             "params": ", ".join(f"{k}={v}" for k, v in sorted(params.items()))})
    report = pl.DataFrame(rows, schema=REPORT_SCHEMA) if rows else pl.DataFrame(schema=REPORT_SCHEMA)
    return report.select(list(REPORT_SCHEMA)), results
