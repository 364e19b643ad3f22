"""The optimizer's objective: a portfolio backtest of every strategy on every symbol trading together,
in which strategies are fired and cloned over time by Rule 3 — the trader's own `Rules.verdict`
on the trader's own `StrategyRecord` — with the thresholds of the parameter set.

How it is computed (docs/optimization.md has the long form and what it leaves out):
1. Each (strategy, symbol) is a *slot*. Its signals come from the strategy; its entries pass
   Rule 2 (`backtest.engine.signal_bars`, the execution layer's gate); the compiled engine
   (`backtest.kernel`) trades them with the set's take-profit tiers and trailing stop, sizing each
   entry at the slot's share of the tradable capital: the rules' position fraction × the set's
   multiplier, and never so much that every slot in a trade at once would touch the reserve
   (the larger of the rules' reserve floor and `min_reserve_usd`).
2. The slots' trades are then replayed in time order, per strategy across symbols as the trader
   counts them: before each entry the strategy's record (its closed round trips so far) goes
   through `Rules.win_rate_gate` (Rule 2) and, at each close, `Rules.verdict` (Rule 3). A fired
   strategy opens nothing more (its open trades still exit); a cloned one trades a second,
   identical slot from its next entry on (its P&L increments count twice).
3. The portfolio's equity is the cash plus every slot's P&L as replayed, marked at each bar
   of the union of the symbols' timelines.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.backtest import kernel as K
from nettrace_dagster.backtest.engine import Prices, signal_bars
from nettrace_dagster.backtest.metrics import periods_per_year
from nettrace_dagster.backtest.params import EngineParams
from nettrace_dagster.market.schema import infer_timeframe_seconds
from nettrace_dagster.optimize.paramset import ParamSet
from nettrace_dagster.rules import Rules, StrategyRecord
from nettrace_dagster.strategies.base import Signals, Strategy
from nettrace_dagster.strategies.registry import get_strategy

FEE_RATE = 0.001  # the paper broker's (execution/resource.py): Binance spot taker
SLIPPAGE_BPS = 5.0
CLONE_MULTIPLIER = 2.0  # a clone is a second, identical slot


@dataclass
class PortfolioResult:
    equity: np.ndarray  # float64, marked at each bar of `timestamps`
    timestamps: np.ndarray  # int64 ms, the union of the symbols' bars
    sharpe: float  # annualised, per-bar returns
    total_return: float
    max_drawdown: float
    trades: int  # closed round trips the portfolio made (a clone's count twice)
    win_rate: float
    fired: list[str] = field(default_factory=list)  # strategies Rule 3 fired, in the order fired
    cloned: list[str] = field(default_factory=list)
    closed_exit_ms: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # one per round trip
    periods_per_year: float = 525_600.0
    initial_cash: float = 0.0

    def bar_returns(self) -> np.ndarray:
        prev = np.concatenate(([self.initial_cash], self.equity[:-1]))
        return self.equity / prev - 1.0


class SignalCache:
    """Signals by (symbol, bars, strategy, parameters): a study re-tries the same strategy
    parameters often (TPE, and every walk-forward fold), and signals cost more than the engine."""

    def __init__(self, max_items: int = 256) -> None:
        self.max_items = max_items
        self._items: dict[tuple, Signals] = {}
        self.hits = self.misses = 0

    def get(self, symbol: str, candles: pl.DataFrame, strategy: Strategy, params: Mapping[str, Any]) -> Signals:
        key = (symbol, candles.height, strategy.name, tuple(sorted(params.items())))
        found = self._items.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        signals = strategy.run(candles, dict(params))
        if len(self._items) >= self.max_items:
            self._items.pop(next(iter(self._items)))
        self._items[key] = signals
        return signals


def returns_metrics(r: np.ndarray, ppy: float) -> tuple[float, float, float]:
    """(annualised Sharpe, total return, max drawdown) of per-bar returns."""
    if r.size == 0:
        return 0.0, 0.0, 0.0
    growth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], growth)))[1:]
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    sharpe = float(r.mean()) / std * math.sqrt(ppy) if std > 1e-15 else 0.0
    return sharpe, float(growth[-1] - 1.0), float(max(0.0, np.max(1.0 - growth / peak)))


@dataclass
class _Trade:
    entry_ms: int
    exit_ms: int  # 2**62 when still open at the end
    slot: int
    strategy: str
    entry_bar: int
    exit_bar: int
    pnl: float
    ret: float
    closed: bool


def portfolio_backtest(candles: dict[str, pl.DataFrame], params: ParamSet, *, initial_cash: float,
                       rules: Rules | None = None, fee: float = FEE_RATE, slippage_bps: float = SLIPPAGE_BPS,
                       strategies: Mapping[str, Strategy] | None = None,
                       cache: SignalCache | None = None) -> PortfolioResult:
    """Backtest `params` as one portfolio on `candles` (symbol -> candle frame). `rules` (default
    the built-in ones; pass the execution layer's) are tightened by the set's thresholds; Rule 2
    gates every entry. `strategies` resolves strategy names (default: the registry)."""
    if not initial_cash > 0:
        raise ValueError(f"initial_cash must be > 0, got {initial_cash!r}")
    base = rules if rules is not None else Rules()
    prules = params.rules(base)
    frames = {s: df for s, df in sorted(candles.items()) if df.height}
    names = sorted(params.strategies)
    if not frames:
        empty = np.empty(0)
        return PortfolioResult(empty, np.empty(0, dtype=np.int64), 0.0, 0.0, 0.0, 0, 0.0, initial_cash=initial_cash)
    times = {s: df["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64) for s, df in frames.items()}
    timeline = np.unique(np.concatenate(list(times.values())))
    tf = infer_timeframe_seconds(next(iter(frames.values())))
    ppy = periods_per_year(tf)
    p = params.portfolio
    reserve = max(prules.reserve_floor(initial_cash), p["min_reserve_usd"])
    n_slots = max(1, len(frames) * len(names))
    tradable_share = max(0.0, 1.0 - reserve / initial_cash)
    size = min(prules.max_position_fraction, tradable_share / n_slots)
    engine = EngineParams(initial_equity=initial_cash, fee=fee, slippage_bps=slippage_bps,
                          trade_fraction=max(size, 1e-12), trailing_stop=p["trailing_stop"],
                          tp0=p["tp0"], tp1=p["tp1"], tp2=p["tp2"])
    (tp0, tp1, tp2), (f0, f1, f2) = engine.tiers()
    slot_curves: list[tuple[str, np.ndarray]] = []  # (symbol, P&L curve on the symbol's bars)
    trades: list[_Trade] = []
    for symbol, df in frames.items():
        prices = Prices.from_candles(df)
        n = len(prices)
        for name in names:
            strat = (strategies or {}).get(name) or get_strategy(name)
            sig_params = dict(params.strategies[name])
            signals = cache.get(symbol, df, strat, sig_params) if cache is not None else strat.run(df, sig_params)
            entry, exit_ = signal_bars(signals, engine, rules=prules)
            cap = entry.shape[0] + 1
            equity = np.empty(n)
            eb, xb, rs = (np.empty(cap, dtype=np.int64) for _ in range(3))
            ep, un, xp, pn = (np.empty(cap) for _ in range(4))
            stats = K.simulate_record_nb(prices.open, prices.high, prices.low, prices.close, prices.growth,
                                         entry, exit_, float(initial_cash), float(fee), engine.slippage,
                                         float(engine.size_fraction), 0.0, float(engine.trailing_stop),
                                         float(tp0), float(tp1), float(tp2), float(f0), float(f1), float(f2),
                                         equity, eb, ep, un, xb, xp, pn, rs)
            k = int(stats[K.S_TRADES])  # the last may still be open
            slot = len(slot_curves)
            slot_curves.append((symbol, equity - initial_cash))
            ts = times[symbol]
            cost = ep[:k] * un[:k] * (1.0 + fee)
            for t in range(k):
                closed = rs[t] != K.REASON_OPEN
                trades.append(_Trade(int(ts[eb[t]]), int(ts[xb[t]]) if closed else 2**62, slot, name,
                                     int(eb[t]), int(xb[t]), float(pn[t]),
                                     float(pn[t] / cost[t]) if cost[t] > 0 else 0.0, bool(closed)))
    mults, fired, cloned, n_closed, n_wins = _replay(trades, prules, names)
    exits = np.array(sorted(t.exit_ms for made in mults.values() for t, m in made if t.closed for _ in range(int(m))),
                     dtype=np.int64)
    equity = np.full(timeline.shape[0], float(initial_cash))
    for slot, (symbol, pnl) in enumerate(slot_curves):
        m = np.zeros(pnl.shape[0])  # bars of trades never made, and flat bars, add nothing
        for t, mult in mults.get(slot, ()):
            m[t.entry_bar:t.exit_bar + 1] = mult
        contribution = np.cumsum(m * np.diff(pnl, prepend=0.0))
        idx = np.searchsorted(times[symbol], timeline, side="right") - 1  # last bar at or before
        equity += np.where(idx >= 0, contribution[np.maximum(idx, 0)], 0.0)
    prev = np.concatenate(([float(initial_cash)], equity[:-1]))
    r = np.divide(equity, prev, out=np.ones_like(equity), where=prev > 0) - 1.0
    sharpe, total, mdd = returns_metrics(r, ppy)
    return PortfolioResult(equity, timeline, sharpe, total, mdd, n_closed, n_wins / n_closed if n_closed else 0.0,
                           fired, cloned, exits, ppy, float(initial_cash))


def _replay(trades: list[_Trade], rules: Rules, names: list[str]
            ) -> tuple[dict[int, list[tuple[_Trade, float]]], list[str], list[str], int, int]:
    """Rules 2 and 3 over the slots' trades in time order: each trade's multiplier (0 = never
    made), the strategies fired and cloned, and the closed round trips and wins made."""
    trades.sort(key=lambda t: (t.entry_ms, t.slot))
    sums = {name: [0, 0, 0.0, 0.0, 0.0] for name in names}  # trades, wins, net, Σr, Σr²
    state = {name: "active" for name in names}
    fired: list[str] = []
    cloned: list[str] = []
    pending: list[tuple[int, int, _Trade]] = []  # (exit_ms, seq, trade) of trades made
    mults: dict[int, list[tuple[_Trade, float]]] = {}
    n_closed = n_wins = 0

    def record(name: str) -> StrategyRecord:
        n, w, net, s1, s2 = sums[name]
        var = max(s2 / n - (s1 / n) ** 2, 0.0) if n else 0.0
        return StrategyRecord(trades=n, wins=w, net_pnl=net, sharpe=(s1 / n) / math.sqrt(var) if var > 0 else 0.0,
                              fired=state[name] == "fired")

    def close_until(ms: int) -> None:
        nonlocal n_closed, n_wins
        while pending and pending[0][0] <= ms:
            _, _, t = heapq.heappop(pending)
            s = sums[t.strategy]
            s[0] += 1
            s[1] += t.pnl > 0
            s[2] += t.pnl
            s[3] += t.ret
            s[4] += t.ret * t.ret
            if state[t.strategy] == "fired":
                continue
            verdict = rules.verdict(record(t.strategy))  # Rule 3, as the trader judges at each mark
            if not verdict.allowed:
                state[t.strategy] = "fired"
                fired.append(t.strategy)
            elif verdict.reasons[0].startswith("clone") and state[t.strategy] == "active":
                state[t.strategy] = "cloned"
                cloned.append(t.strategy)

    for seq, t in enumerate(trades):
        close_until(t.entry_ms)
        if not rules.win_rate_gate(record(t.strategy)).allowed:
            continue  # Rule 2 (or a fired strategy): the entry is never made
        mult = CLONE_MULTIPLIER if state[t.strategy] == "cloned" else 1.0
        mults.setdefault(t.slot, []).append((t, mult))
        if t.closed:
            n_closed += int(mult)
            n_wins += int(mult) * (t.pnl > 0)
            heapq.heappush(pending, (t.exit_ms, seq, t))
    close_until(2**62)
    return mults, fired, cloned, n_closed, n_wins
