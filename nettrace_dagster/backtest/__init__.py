"""The backtest engine: strategies' signals → fills → metrics, compiled with numba.

Public API:
- `run_backtest(candles, strategy, params, engine)` → `BacktestResult` (metrics, equity, trades)
- `simulate_signals(prices, signals, engine)` for precomputed signals; `gate_entries` (Rule 2)
- `sweep(candles, strategy, param_sets, engine)` many parameter sets on both cores
- `EngineParams`, `Metrics`, `deflated_sharpe_ratio`, `periods_per_year`
"""

from nettrace_dagster.backtest.engine import (
    BacktestResult,
    Prices,
    bar_returns,
    gate_entries,
    gated_entry_bars,
    run_backtest,
    signal_bars,
    simulate_signals,
    simulate_stats,
)
from nettrace_dagster.backtest.metrics import (
    Metrics,
    deflated_sharpe_from_returns,
    deflated_sharpe_ratio,
    periods_per_year,
    probabilistic_sharpe_ratio,
)
from nettrace_dagster.backtest.params import EngineParams, split_params
from nettrace_dagster.backtest.sweep import sweep, sweep_table

__all__ = [
    "BacktestResult", "EngineParams", "Metrics", "Prices", "bar_returns", "deflated_sharpe_from_returns",
    "deflated_sharpe_ratio", "gate_entries", "gated_entry_bars", "signal_bars", "periods_per_year", "probabilistic_sharpe_ratio",
    "run_backtest", "simulate_signals", "simulate_stats", "split_params", "sweep", "sweep_table",
]
