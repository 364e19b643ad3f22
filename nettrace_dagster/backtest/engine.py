"""Run a strategy's signals through the compiled engine and collect metrics, trades and equity.

Entries pass the Rule 2 gate first (`nettrace_dagster.rules.entry_gate_mask`, the same function
the execution layer uses) in numpy; the compiled loop then only sees gated entries. The gate's
thresholds are the execution layer's own `Rules` — `load_rules(load_settings())`, i.e. the
built-in numbers tightened by any `NETTRACE_RULE_*` setting — so a backtest never trades an entry
that paper or live trading would refuse. `EngineParams.min_confidence`/`min_confirmations` can
only tighten them further.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.backtest import kernel as K
from nettrace_dagster.backtest.metrics import Metrics, metrics_from_stats, periods_per_year
from nettrace_dagster.backtest.params import EngineParams, split_params
from nettrace_dagster.market.schema import infer_timeframe_seconds
from nettrace_dagster.rules import Rules, entry_gate_mask, load_rules
from nettrace_dagster.strategies import Signals, Strategy, get_strategy
from nettrace_dagster.strategies.base import check_entry_scores

TRADE_SCHEMA = {
    "entry_bar": pl.Int64, "entry_price": pl.Float64, "units": pl.Float64, "exit_bar": pl.Int64,
    "exit_price": pl.Float64, "pnl": pl.Float64, "return": pl.Float64, "exit_reason": pl.String,
}


@dataclass(frozen=True)
class Prices:
    """Contiguous float64 OHLC arrays (the engine's view of a candle frame) and the timeframe."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    timeframe_seconds: int | None = None
    growth: np.ndarray = field(init=False, repr=False)  # close[k] / close[k-1], growth[0] = 1

    def __post_init__(self) -> None:
        growth = np.ones(self.close.shape[0], dtype=np.float64)
        if self.close.shape[0] > 1:
            np.divide(self.close[1:], self.close[:-1], out=growth[1:])
        object.__setattr__(self, "growth", growth)

    @classmethod
    def from_candles(cls, candles: pl.DataFrame) -> Prices:
        def col(name: str) -> np.ndarray:
            return np.ascontiguousarray(candles[name].to_numpy(), dtype=np.float64)

        tf = infer_timeframe_seconds(candles) if "timestamp" in candles.columns else None
        return cls(col("open"), col("high"), col("low"), col("close"), tf)

    def __len__(self) -> int:
        return int(self.close.shape[0])


@dataclass
class BacktestResult:
    metrics: Metrics
    equity: np.ndarray = field(repr=False)  # float64[n], marked at each close (empty if not recorded)
    trades: pl.DataFrame = field(repr=False)  # one row per trade; an open trade has exit_reason "open"
    params: EngineParams = field(default_factory=EngineParams)
    rules: Rules = field(default_factory=Rules)  # whose Rule 2 gated the entries
    entry_signals: int = 0  # entry signals the strategy gave …
    gated_entries: int = 0  # … and how many of them passed Rule 2

    def summary(self) -> dict[str, Any]:
        return self.metrics.to_dict()


def current_rules() -> Rules:
    """The rules the execution layer trades under right now: the built-in numbers tightened by
    the `NETTRACE_RULE_*` settings (RulesError, a one-line SettingsError, if one would loosen)."""
    from nettrace_dagster.settings import load_settings

    return load_rules(load_settings())


def gate_thresholds(params: EngineParams | None = None, rules: Rules | None = None) -> tuple[float, int]:
    """(min confidence, min confirmations) an entry needs: the rules' and the engine's, the tighter."""
    params = params or EngineParams()
    rules = rules if rules is not None else current_rules()
    return (max(rules.min_confidence, params.min_confidence),
            max(rules.min_confirmations, params.min_confirmations))


def gate_entries(signals: Signals, params: EngineParams | None = None, rules: Rules | None = None) -> np.ndarray:
    """Entries (bool[n]) that pass Rule 2. The gate is evaluated on entry bars only. `rules`
    defaults to `current_rules()`."""
    entries = np.asarray(signals.entries, dtype=np.bool_)
    out = np.zeros(entries.shape[0], dtype=np.bool_)
    out[gated_entry_bars(signals, params, rules)] = True
    return out


def gated_entry_bars(signals: Signals, params: EngineParams | None = None,
                     rules: Rules | None = None) -> np.ndarray:
    """Sorted bar indices whose entry signal passes Rule 2 (`rules.entry_gate_mask` with
    `gate_thresholds`). StrategyError if an entry bar's confidence or confirmations are not valid
    (NaN would otherwise just fail the comparison, hiding a broken strategy)."""
    idx = np.flatnonzero(np.asarray(signals.entries, dtype=np.bool_))
    if idx.size:
        min_confidence, min_confirmations = gate_thresholds(params, rules)
        confidence, confirmations = np.asarray(signals.confidence)[idx], np.asarray(signals.confirmations)[idx]
        check_entry_scores(confidence, confirmations)
        ok = entry_gate_mask(confidence, confirmations,
                             min_confidence=min_confidence, min_confirmations=min_confirmations)
        idx = idx[ok]
    return idx


def signal_bars(signals: Signals, params: EngineParams | None = None, *, gate: bool = True,
                rules: Rules | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(entry bars, exit bars) as the kernel takes them: gated entries not cancelled by an exit
    on the same bar, and every exit bar."""
    _, entry, exit_ = _signal_bars(signals, params, gate, rules)
    return entry, exit_


def _signal_bars(signals: Signals, params: EngineParams | None, gate: bool,
                 rules: Rules | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entry bars that passed the gate, what `signal_bars` returns)."""
    exits = np.asarray(signals.exits, dtype=np.bool_)
    gated = (gated_entry_bars(signals, params, rules) if gate
             else np.flatnonzero(np.asarray(signals.entries, dtype=np.bool_)))
    entry = gated[~exits[gated]]
    return gated, entry.astype(np.int64, copy=False), np.flatnonzero(exits).astype(np.int64, copy=False)


def _kernel_args(params: EngineParams) -> tuple:
    (tp0, tp1, tp2), (f0, f1, f2) = params.tiers()
    return (float(params.initial_equity), float(params.fee), float(params.slippage),
            float(params.size_fraction), float(params.stop_loss), float(params.trailing_stop),
            float(tp0), float(tp1), float(tp2), float(f0), float(f1), float(f2))


_EMPTY_F = np.empty(0, dtype=np.float64)


def simulate_stats(prices: Prices, entry_bars: np.ndarray, exit_bars: np.ndarray,
                   params: EngineParams) -> np.ndarray:
    """The kernel's stats vector only (no equity curve, no trade list): what sweeps use.
    `entry_bars`/`exit_bars` come from `signal_bars` (entries already gated)."""
    return K.simulate_stats_nb(prices.open, prices.high, prices.low, prices.close, prices.growth, entry_bars, exit_bars,
                               *_kernel_args(params))


def simulate_signals(prices: Prices, signals: Signals, params: EngineParams | None = None, *,
                     ppy: float | None = None, record: bool = True, gate: bool = True,
                     equity_out: np.ndarray | None = None, rules: Rules | None = None) -> BacktestResult:
    """Backtest precomputed signals on `prices`. `gate=False` is for callers that gated already.
    `rules` (default `current_rules()`) gate the entries. `equity_out` (float64[n]) receives the
    equity curve instead of a new array: reusing one saves the page faults of fresh memory when
    backtesting many times."""
    params = params or EngineParams()
    rules = rules if rules is not None else (current_rules() if gate else Rules())
    n = len(prices)
    if len(signals.entries) != n or len(signals.exits) != n:
        raise ValueError(f"signals have {len(signals.entries)} bars, prices {n}")
    gated, entry, exit_ = _signal_bars(signals, params, gate, rules)
    counts = {"rules": rules, "entry_signals": int(np.count_nonzero(signals.entries)),
              "gated_entries": int(gated.shape[0])}
    ppy = ppy if ppy is not None else periods_per_year(prices.timeframe_seconds)
    if not record:
        stats = simulate_stats(prices, entry, exit_, params)
        return BacktestResult(metrics_from_stats(stats, params.initial_equity, n, ppy), _EMPTY_F,
                              pl.DataFrame(schema=TRADE_SCHEMA), params, **counts)
    cap = entry.shape[0] + 1
    if equity_out is not None and (equity_out.shape != (n,) or equity_out.dtype != np.float64):
        raise ValueError(f"equity_out must be float64[{n}]")
    equity = equity_out if equity_out is not None else np.empty(n, dtype=np.float64)
    eb, ebx, rs = (np.empty(cap, dtype=np.int64) for _ in range(3))
    ep, un, xp, pn = (np.empty(cap, dtype=np.float64) for _ in range(4))
    stats = K.simulate_record_nb(prices.open, prices.high, prices.low, prices.close, prices.growth, entry, exit_,
                                 *_kernel_args(params), equity, eb, ep, un, ebx, xp, pn, rs)
    metrics = metrics_from_stats(stats, params.initial_equity, n, ppy)
    k = metrics.trades
    cost = ep[:k] * un[:k]
    trades = pl.DataFrame({
        "entry_bar": eb[:k], "entry_price": ep[:k], "units": un[:k], "exit_bar": ebx[:k],
        "exit_price": xp[:k], "pnl": pn[:k],
        "return": np.divide(pn[:k], cost * (1.0 + params.fee), out=np.zeros(k), where=cost > 0),
        "exit_reason": [K.REASON_NAMES[r] for r in rs[:k]],
    }, schema=TRADE_SCHEMA)
    return BacktestResult(metrics, equity, trades, params, **counts)


def resolve_strategy(strategy: str | Strategy) -> Strategy:
    return get_strategy(strategy) if isinstance(strategy, str) else strategy


def run_backtest(candles: pl.DataFrame, strategy: str | Strategy, params: dict[str, Any] | None = None,
                 engine: EngineParams | dict[str, Any] | None = None, *, ppy: float | None = None,
                 record: bool = True, rules: Rules | None = None) -> BacktestResult:
    """Backtest `strategy` on a valid candle frame. `params` may mix strategy parameters and engine
    keys (stop_loss, tp0, fee, …); engine keys there override `engine`. Entries are gated by
    `rules` (default: `current_rules()`, what the execution layer uses)."""
    rules = rules if rules is not None else current_rules()
    strat = resolve_strategy(strategy)
    strat_params, engine_keys = split_params(dict(params or {}))
    base = engine if isinstance(engine, EngineParams) else EngineParams.from_dict(engine or {})
    eparams = EngineParams.from_dict(engine_keys, base=base) if engine_keys else base
    signals = strat.run(candles, strat_params)
    return simulate_signals(Prices.from_candles(candles), signals, eparams, ppy=ppy, record=record, rules=rules)


def bar_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """Per-bar simple returns of an equity curve (the first against the initial equity)."""
    eq = np.asarray(equity, dtype=np.float64)
    prev = np.concatenate(([initial_equity], eq[:-1]))
    return eq / prev - 1.0
