"""Many parameter sets over the same candles in one call, on every core.

Each set is one task: the strategy's signals (shared work via `Strategy.signal_factory`, guarded
and checked like `Strategy.run`), the Rule 2 gate with the execution layer's rules (loaded once per
sweep), then the compiled kernel in stats-only mode. Threads, not processes: the kernel and
the indicators release the GIL (`nogil=True`) and the candles are shared, not copied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from nettrace_dagster.backtest.engine import (
    Prices,
    current_rules,
    resolve_strategy,
    signal_bars,
    simulate_stats,
)
from nettrace_dagster.backtest.metrics import Metrics, metrics_from_stats, periods_per_year
from nettrace_dagster.backtest.params import EngineParams, split_params
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies import Strategy, StrategyError


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def sweep(candles: pl.DataFrame, strategy: str | Strategy, param_sets: Sequence[dict[str, Any]],
          engine: EngineParams | dict[str, Any] | None = None, *, workers: int | None = None,
          ppy: float | None = None, prices: Prices | None = None, rules: Rules | None = None) -> list[Metrics]:
    """Backtest every parameter set (strategy params and/or engine keys, like `run_backtest`) on
    the same candles; returns their metrics in the order given. `prices` may be passed to reuse
    the engine's view of `candles` across calls (Optuna batches). Entries are gated by `rules`
    (default: `current_rules()`, what the execution layer uses)."""
    rules = rules if rules is not None else current_rules()
    strat = resolve_strategy(strategy)
    base = engine if isinstance(engine, EngineParams) else EngineParams.from_dict(engine or {})
    prices = prices or Prices.from_candles(candles)
    n = len(prices)
    ppy = ppy if ppy is not None else periods_per_year(prices.timeframe_seconds)
    jobs: list[tuple[dict[str, Any], EngineParams]] = []
    for params in param_sets:
        strat_params, engine_keys = split_params(dict(params))
        eparams = EngineParams.from_dict(engine_keys, base=base) if engine_keys else base
        jobs.append((strat.resolve_params(strat_params), eparams))
    if not jobs:
        return []
    make_signals = strat.guarded_factory(candles, [p for p, _ in jobs])

    def one(job: tuple[dict[str, Any], EngineParams]) -> Metrics:
        sparams, eparams = job
        signals = make_signals(sparams)
        try:  # the gate validates the values it reads (entry bars only)
            entry, exit_ = signal_bars(signals, eparams, rules=rules)
        except StrategyError as exc:
            raise StrategyError(f"strategy {strat.name!r}: {exc}") from None
        stats = simulate_stats(prices, entry, exit_, eparams)
        return metrics_from_stats(stats, eparams.initial_equity, n, ppy)

    workers = workers or default_workers()
    if workers == 1 or len(jobs) == 1:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def sweep_table(param_sets: Sequence[dict[str, Any]], results: Sequence[Metrics]) -> pl.DataFrame:
    """Parameters and metrics side by side, one row per set."""
    rows = [{**{f"param_{k}": v for k, v in p.items()}, **m.to_dict()} for p, m in zip(param_sets, results, strict=True)]
    return pl.DataFrame(rows)
