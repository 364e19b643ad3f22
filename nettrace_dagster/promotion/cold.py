"""The COLD stage's backtest: the candidate's set over the last `days` of bars.

The default evaluator is the optimizer's portfolio backtest (`optimize.portfolio.portfolio_backtest`,
the objective the search used, with Rule 3 firing and cloning over time). For a set that names a
generated strategy file (which the optimizer's backtest does not know), `engine_backtest`: each strategy of the set on each symbol through the
backtest engine (entries gated by the execution layer's rules; the set's take-profit tiers,
trailing stop and trade-fraction multiplier as engine parameters), the runs' bar returns averaged
into one equal-weight portfolio, Sharpe annualised as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.backtest.engine import bar_returns, run_backtest
from nettrace_dagster.backtest.metrics import periods_per_year
from nettrace_dagster.backtest.params import EngineParams
from nettrace_dagster.market.schema import infer_timeframe_seconds
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies import Strategy, get_strategy
from nettrace_dagster.strategies.registry import load_verified_strategy


def last_days(candles: dict[str, pl.DataFrame], days: float) -> dict[str, pl.DataFrame]:
    """Each symbol's bars of the last `days` before its newest bar."""
    out = {}
    for symbol, df in candles.items():
        if df.height:
            end = df["timestamp"].max()
            out[symbol] = df.filter(pl.col("timestamp") > end - timedelta(days=days))
    return out


def engine_params(portfolio: dict[str, float]) -> EngineParams:
    return EngineParams(tp0=portfolio.get("tp0", 0.0), tp1=portfolio.get("tp1", 0.0), tp2=portfolio.get("tp2", 0.0),
                        trailing_stop=portfolio.get("trailing_stop", 0.0),
                        fraction_multiplier=max(min(portfolio.get("trade_fraction_mult", 1.0), 1.0), 1e-6))


def engine_backtest(candles: dict[str, pl.DataFrame], param_set: dict[str, Any],
                    strategy_files: dict[str, dict[str, str]] | None = None,
                    rules: Rules | None = None) -> dict[str, Any]:
    """Equal-weight portfolio of every (symbol, strategy) run: Sharpe, return, max drawdown, bars."""
    files = strategy_files or {}
    eparams = engine_params(param_set["portfolio"])
    rets: list[np.ndarray] = []
    trades = 0
    ppy = None
    for symbol in sorted(candles):
        df = candles[symbol]
        if df.height < 3:
            continue
        ppy = ppy or periods_per_year(infer_timeframe_seconds(df))
        for name, params in sorted(param_set["strategies"].items()):
            strat: Strategy = (load_verified_strategy(files[name]["path"], files[name]["sha256"]) if name in files
                               else get_strategy(name))
            result = run_backtest(df, strat, params, eparams, rules=rules or Rules())
            rets.append(bar_returns(result.equity, eparams.initial_equity))
            trades += result.metrics.trades
    if not rets:
        raise ValueError("no bars to backtest in the COLD window")
    n = min(len(r) for r in rets)
    portfolio = np.mean([r[-n:] for r in rets], axis=0)
    growth = np.cumprod(1.0 + portfolio)
    peak = np.maximum.accumulate(np.concatenate(([1.0], growth)))[1:]
    std = float(portfolio.std(ddof=1)) if n > 1 else 0.0
    sharpe = float(portfolio.mean() / std * math.sqrt(ppy or 1.0)) if std > 0 else 0.0
    return {"sharpe": sharpe, "total_return": float(growth[-1] - 1.0),
            "max_drawdown": float(np.max(1.0 - growth / peak)), "bars": n, "runs": len(rets), "trades": trades,
            "evaluator": "engine_backtest"}


def make_cold_evaluator(load_candles: Callable[[], dict[str, pl.DataFrame]], days: float,
                        initial_cash: float = 100.0, rules: Rules | None = None,
                        ) -> Callable[[dict[str, Any], dict[str, dict[str, str]]], dict[str, Any]]:
    """The COLD evaluator over the last `days` of `load_candles()`: the optimizer's portfolio
    backtest (the search's own objective) unless the set names a strategy file, which only
    `engine_backtest` can run."""

    def evaluate(param_set: dict[str, Any], strategy_files: dict[str, dict[str, str]]) -> dict[str, Any]:
        candles = last_days(load_candles(), days)
        if strategy_files:  # the optimizer's backtest knows the built-in strategies only
            return engine_backtest(candles, param_set, strategy_files, rules)
        from nettrace_dagster.optimize.paramset import ParamSet
        from nettrace_dagster.optimize.portfolio import portfolio_backtest

        res = portfolio_backtest(candles, ParamSet.from_json(param_set), initial_cash=initial_cash, rules=rules)
        return {"sharpe": float(res.sharpe), "total_return": float(res.total_return),
                "max_drawdown": float(res.max_drawdown), "trades": int(res.trades),
                "evaluator": "portfolio_backtest", "bars": max((df.height for df in candles.values()), default=0)}

    return evaluate
