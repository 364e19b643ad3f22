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
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba as nb
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
from nettrace_dagster.strategies.indicators import helped_by, in_parallel, split_range
from nettrace_dagster.strategies.registry import get_strategy

FEE_RATE = 0.001  # the paper broker's (execution/resource.py): Binance spot taker
SLIPPAGE_BPS = 5.0
CLONE_MULTIPLIER = 2.0  # a clone is a second, identical slot
OPEN_MS = 2**62  # the exit time of a trade still open at the end


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
    positive: bool = False  # equity stayed > 0 before the last bar: `bar_returns()` is what was scored
    returns: np.ndarray | None = None  # the per-bar returns the metrics above were computed from

    def bar_returns(self) -> np.ndarray:
        prev = np.concatenate(([self.initial_cash], self.equity[:-1]))
        return self.equity / prev - 1.0


class SignalCache:
    """Signals by (symbol, bars, strategy, parameters): a study re-tries the same strategy
    parameters often (TPE, and every search that moves only portfolio numbers), and signals cost
    more than the engine. Bounded by bytes (a million bars' signals are ~18 MB), oldest out first."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: dict[tuple, Signals] = {}
        self._bytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def _size(signals: Signals) -> int:
        return sum(np.asarray(a).nbytes for a in signals)

    def get(self, symbol: str, candles: pl.DataFrame, strategy: Strategy, params: Mapping[str, Any]) -> Signals:
        key = (symbol, candles.height, strategy.name, tuple(sorted(params.items())))
        found = self._items.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        # shapes and dtypes checked here, confidence and confirmations on the entry bars by the
        # Rule 2 gate (`signal_bars`), the only bars read: as sweeps do (`Strategy.guarded_factory`)
        resolved = strategy.resolve_params(dict(params))
        signals = strategy.call_signals(lambda: strategy.signals(candles, resolved), candles.height, full=False)
        size = self._size(signals)
        while self._items and self._bytes + size > self.max_bytes:
            self._bytes -= self._size(self._items.pop(next(iter(self._items))))
        if size <= self.max_bytes:
            self._items[key] = signals
            self._bytes += size
        return signals


def returns_metrics(r: np.ndarray, ppy: float) -> tuple[float, float, float]:
    """(annualised Sharpe, total return, max drawdown) of per-bar returns."""
    if r.size == 0:
        return 0.0, 0.0, 0.0
    flat = np.ascontiguousarray(r, dtype=np.float64)
    # the compounding pass (sequential, nogil) on a helper while numpy takes the moments
    (mean, std), (total, mdd) = in_parallel(lambda: (float(r.mean()), float(r.std(ddof=1)) if r.size > 1 else 0.0),
                                            lambda: _growth_drawdown(flat))
    sharpe = mean / std * math.sqrt(ppy) if std > 1e-15 else 0.0
    return sharpe, total, mdd


def returns_metrics_py(r: np.ndarray, ppy: float) -> tuple[float, float, float]:
    """`returns_metrics` in numpy, the reference the compiled one is tested against."""
    if r.size == 0:
        return 0.0, 0.0, 0.0
    growth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], growth)))[1:]
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    sharpe = float(r.mean()) / std * math.sqrt(ppy) if std > 1e-15 else 0.0
    return sharpe, float(growth[-1] - 1.0), float(max(0.0, np.max(1.0 - growth / peak)))


@nb.njit(cache=True, nogil=True)
def _growth_drawdown(r: np.ndarray) -> tuple[float, float]:
    """(total return, max drawdown) of compounded returns in one pass, with numpy's operations
    in numpy's order (a running product, a running peak from 1); NaN anywhere gives numpy's
    answer too: no drawdown."""
    g = 1.0
    peak = 1.0
    worst = 0.0
    nan = False
    for i in range(r.shape[0]):
        g *= 1.0 + r[i]
        if g > peak or g != g:
            peak = g
        d = 1.0 - g / peak
        if d != d:
            nan = True
        elif d > worst:
            worst = d
    return g - 1.0, 0.0 if nan else worst


class _Frame:
    """What every trial needs of one symbol's candles, computed once per frame."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.prices = Prices.from_candles(df)
        self.times = df["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
        self.timeframe_s = infer_timeframe_seconds(df)


_FRAMES: dict[int, tuple[pl.DataFrame, _Frame]] = {}


def _frame(df: pl.DataFrame) -> _Frame:
    """The frame's arrays, reused while the same frame object is passed (a study passes the same
    frames to every trial); the frame itself is kept so its id cannot be reused by another."""
    hit = _FRAMES.get(id(df))
    if hit is not None and hit[0] is df:
        return hit[1]
    if len(_FRAMES) >= 32:
        _FRAMES.pop(next(iter(_FRAMES)))
    made = _Frame(df)
    _FRAMES[id(df)] = (df, made)
    return made


_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """One thread per core, shared by every backtest of the process (created on first use)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="portfolio"))
    return _POOL[0]


def union_timeline(times: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct bar times of every symbol (sorting beats numpy's hash-based unique here)."""
    if len(times) == 1:
        return times[0]
    merged = np.sort(np.concatenate(times), kind="stable")
    return merged[np.concatenate(([True], merged[1:] != merged[:-1]))]


def portfolio_backtest(candles: dict[str, pl.DataFrame], params: ParamSet, *, initial_cash: float,
                       rules: Rules | None = None, fee: float = FEE_RATE, slippage_bps: float = SLIPPAGE_BPS,
                       strategies: Mapping[str, Strategy] | None = None,
                       cache: SignalCache | None = None) -> PortfolioResult:
    """Backtest `params` as one portfolio on `candles` (symbol -> candle frame). `rules` (default
    the built-in ones; pass the execution layer's) are tightened by the set's thresholds; Rule 2
    gates every entry. `strategies` resolves strategy names (default: the registry)."""
    # the pool's workers run the slots, and any worker without a slot of its own helps with the
    # long passes of the others and of the portfolio's equity (`indicators.split_range`)
    with helped_by(_pool()):
        return _portfolio_backtest(candles, params, initial_cash=initial_cash, rules=rules, fee=fee,
                                   slippage_bps=slippage_bps, strategies=strategies, cache=cache)


def _portfolio_backtest(candles: dict[str, pl.DataFrame], params: ParamSet, *, initial_cash: float,
                        rules: Rules | None, fee: float, slippage_bps: float, strategies: Mapping[str, Strategy] | None,
                        cache: SignalCache | None) -> PortfolioResult:
    if not initial_cash > 0:
        raise ValueError(f"initial_cash must be > 0, got {initial_cash!r}")
    base = rules if rules is not None else Rules()
    prules = params.rules(base)
    frames = {s: df for s, df in sorted(candles.items()) if df.height}
    names = sorted(params.strategies)
    if not frames:
        empty = np.empty(0)
        return PortfolioResult(empty, np.empty(0, dtype=np.int64), 0.0, 0.0, 0.0, 0, 0.0, initial_cash=initial_cash)
    cached = {s: _frame(df) for s, df in frames.items()}
    times = {s: f.times for s, f in cached.items()}
    timeline = union_timeline(list(times.values()))
    ppy = periods_per_year(next(iter(cached.values())).timeframe_s)
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
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("entry_ms", "exit_ms", "slot", "entry", "exit", "pnl", "ret",
                                                         "closed")}
    def run_slot(job: tuple[str, str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One slot (symbol, strategy): its signals, Rule 2's gate and the engine with recording."""
        symbol, name = job
        df, prices = frames[symbol], cached[symbol].prices
        strat = (strategies or {}).get(name) or get_strategy(name)
        sig_params = dict(params.strategies[name])
        signals = cache.get(symbol, df, strat, sig_params) if cache is not None else strat.run(df, sig_params)
        entry, exit_ = signal_bars(signals, engine, rules=prules)
        cap = entry.shape[0] + 1
        equity = np.empty(len(prices))
        eb, xb, rs = (np.empty(cap, dtype=np.int64) for _ in range(3))
        ep, un, xp, pn = (np.empty(cap) for _ in range(4))
        stats = K.simulate_record_nb(prices.open, prices.high, prices.low, prices.close, prices.growth,
                                     entry, exit_, float(initial_cash), float(fee), engine.slippage,
                                     float(engine.size_fraction), 0.0, float(engine.trailing_stop),
                                     float(tp0), float(tp1), float(tp2), float(f0), float(f1), float(f2),
                                     equity, eb, ep, un, xb, xp, pn, rs)
        k = int(stats[K.S_TRADES])  # the last may still be open
        return equity, [a[:k] for a in (eb, xb, rs, ep, un, pn)]

    jobs = [(symbol, name) for symbol in frames for name in names]
    # slots are independent until the replay: signals (nogil indicators) and the engine (nogil) of
    # several slots run on the cores at once; results are gathered in slot order, as before
    ran = list(_pool().map(run_slot, jobs)) if len(jobs) > 1 else [run_slot(jobs[0])]
    for slot, ((symbol, _), (equity, (eb, xb, rs, ep, un, pn))) in enumerate(zip(jobs, ran, strict=True)):
        n, k = equity.shape[0], eb.shape[0]
        slot_curves.append((symbol, equity))  # the slot's P&L is this less the initial cash
        ts = times[symbol]
        closed = rs != K.REASON_OPEN
        cost = ep * un * (1.0 + fee)
        cols["entry_ms"].append(ts[eb])
        cols["exit_ms"].append(np.where(closed, ts[np.minimum(xb, n - 1)], OPEN_MS))
        cols["slot"].append(np.full(k, slot, dtype=np.int64))
        cols["entry"].append(eb.copy())
        cols["exit"].append(xb.copy())
        cols["pnl"].append(pn.copy())
        cols["ret"].append(np.divide(pn, cost, out=np.zeros(k), where=cost > 0))
        cols["closed"].append(closed)
    trades = {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}
    slot_names = [names[i % len(names)] for i in range(len(slot_curves))]
    mult, fired, cloned = _replay(trades, slot_names, prules, names)
    made_closed = (mult > 0) & trades["closed"].astype(bool)
    weight = mult[made_closed]
    exits = np.sort(np.repeat(trades["exit_ms"][made_closed], weight.astype(np.int64)))
    n_closed = int(weight.sum())
    n_wins = int(weight[trades["pnl"][made_closed] > 0].sum())
    # each slot's P&L increments, weighted by the multiplier of the trade they belong to (a slot's
    # trades never share a bar; elsewhere 0: bars of trades never made, and flat bars, add nothing),
    # summed per symbol and accumulated once
    made: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for slot, (symbol, curve) in enumerate(slot_curves):
        mine = (trades["slot"] == slot) & (mult > 0)
        if mine.any():
            made.setdefault(symbol, []).append((curve, trades["entry"][mine].astype(np.int64),
                                                trades["exit"][mine].astype(np.int64), mult[mine]))
    steps = {symbol: _weighted_steps(slots, float(initial_cash)) for symbol, slots in made.items()}
    if len(steps) == 1 and times[next(iter(steps))] is timeline:
        equity, r = _equity_returns(next(iter(steps.values())), float(initial_cash))
    else:
        equity = np.full(timeline.shape[0], float(initial_cash))
        for symbol, step in steps.items():
            contribution = np.cumsum(step)
            if times[symbol] is timeline:
                equity += contribution
            else:
                idx = np.searchsorted(times[symbol], timeline, side="right") - 1  # last bar at or before
                equity += np.where(idx >= 0, contribution[np.maximum(idx, 0)], 0.0)
        prev = np.concatenate(([float(initial_cash)], equity[:-1]))
        r = np.divide(equity, prev, out=np.ones_like(equity), where=prev > 0) - 1.0
    sharpe, total, mdd = returns_metrics(r, ppy)
    return PortfolioResult(equity, timeline, sharpe, total, mdd, n_closed, n_wins / n_closed if n_closed else 0.0,
                           fired, cloned, exits, ppy, float(initial_cash),
                           bool(equity.shape[0] < 2 or equity[:-1].min() > 0), r)


def _weighted_steps(slots: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], cash: float) -> np.ndarray:
    """One symbol's step: its slots' (curve, entry bars, exit bars, multipliers) P&L increments
    weighted by `_add_weighted_steps`, in slot order, over consecutive bar ranges shared with
    the helper pool (each bar's sum is the same, in the same order, whoever computes it)."""
    n = slots[0][0].shape[0]
    step = np.empty(n)

    def run(lo: int, hi: int) -> None:
        for k, (curve, entry, exit_, mult) in enumerate(slots):
            _add_weighted_steps(curve, cash, entry, exit_, mult, step, k == 0, lo, hi)

    split_range(run, n, work=n * len(slots))
    return step


@nb.njit(cache=True, nogil=True)
def _add_weighted_steps(curve: np.ndarray, cash: float, entry: np.ndarray, exit_: np.ndarray, mult: np.ndarray,
                        step: np.ndarray, first: bool, lo: int = 0, hi: int = -1) -> None:
    """step[lo:hi] (=, or += unless `first`) the slot's P&L increments (P&L = curve − cash) ×
    the multiplier of the trade holding each bar, from its entry bar through its exit bar:
    numpy's `diff(pnl, prepend=0) * cumsum(delta)` element for element (`_steps_py` is the
    reference). The multipliers are small whole numbers, so their running sum is exact in any
    order: the one at `lo` is summed from the trades, and a range gives the whole's bits."""
    n = curve.shape[0]
    hi = n if hi < 0 else hi
    delta = np.zeros(hi - lo + 1)
    active = 0.0
    for k in range(entry.shape[0]):
        if entry[k] < lo <= exit_[k] + 1:
            active += mult[k]  # in force before bar lo
        if lo <= entry[k] < hi:
            delta[entry[k] - lo] += mult[k]
        if lo <= exit_[k] + 1 < hi:
            delta[exit_[k] + 1 - lo] -= mult[k]
    prev = curve[lo - 1] - cash if lo > 0 else 0.0
    for i in range(lo, hi):
        active += delta[i - lo]
        pnl = curve[i] - cash
        w = (pnl - prev) * active
        prev = pnl
        if first:
            step[i] = w
        else:
            step[i] += w


@nb.njit(cache=True, nogil=True)
def _equity_returns(step: np.ndarray, cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Equity (cash + the running sum of the steps) and its per-bar returns (0 after equity ≤ 0),
    as numpy's `cash + cumsum(step)` and `divide(equity, prev, where=prev > 0) - 1`."""
    n = step.shape[0]
    equity = np.empty(n)
    r = np.empty(n)
    acc = 0.0
    prev = cash
    for i in range(n):
        acc += step[i]
        eq = cash + acc
        equity[i] = eq
        r[i] = (eq / prev if prev > 0 else 1.0) - 1.0
        prev = eq
    return equity, r


def _steps_py(curves: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], cash: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference of `_add_weighted_steps` + `_equity_returns` for one symbol's slots
    (curve, entry bars, exit bars, multipliers): (equity, returns)."""
    step: np.ndarray | None = None
    for curve, entry, exit_, mult in curves:
        pnl = curve - cash
        delta = np.zeros(pnl.shape[0] + 1)
        np.add.at(delta, entry, mult)
        np.add.at(delta, exit_ + 1, -mult)
        weighted = np.diff(pnl, prepend=0.0)
        weighted *= np.cumsum(delta[:-1])
        if step is None:
            step = weighted
        else:
            step += weighted
    assert step is not None
    equity = np.full(step.shape[0], cash)
    equity += np.cumsum(step)
    prev = np.concatenate(([cash], equity[:-1]))
    return equity, np.divide(equity, prev, out=np.ones_like(equity), where=prev > 0) - 1.0


def _replay(trades: dict[str, np.ndarray], slot_names: list[str], rules: Rules, names: list[str]
            ) -> tuple[np.ndarray, list[str], list[str]]:
    """Rules 2 and 3 over the slots' trades in time order: each trade's multiplier (0 = never
    made), and the strategies fired and cloned, in order. The record of a strategy changes only
    when one of its trades closes, so its Rule 2 and Rule 3 answers are asked then."""
    order = np.lexsort((trades["slot"], trades["entry_ms"]))
    entry_ms, exit_ms = trades["entry_ms"].tolist(), trades["exit_ms"].tolist()
    slots, pnls, rets = trades["slot"].tolist(), trades["pnl"].tolist(), trades["ret"].tolist()
    closed = trades["closed"].tolist()
    mult = np.zeros(len(entry_ms))
    sums = {name: [0, 0, 0.0, 0.0, 0.0] for name in names}  # trades, wins, net, Σr, Σr²
    state = {name: "active" for name in names}
    may_enter = {name: rules.win_rate_gate(StrategyRecord()).allowed for name in names}
    fired: list[str] = []
    cloned: list[str] = []
    pending: list[tuple[int, int]] = []  # (exit_ms, trade) of trades made and not yet closed

    def record(name: str) -> StrategyRecord:
        n, w, net, s1, s2 = sums[name]
        var = max(s2 / n - (s1 / n) ** 2, 0.0) if n else 0.0
        return StrategyRecord(trades=n, wins=w, net_pnl=net, sharpe=(s1 / n) / math.sqrt(var) if var > 0 else 0.0,
                              fired=state[name] == "fired")

    def close_until(ms: int) -> None:
        while pending and pending[0][0] <= ms:
            _, i = heapq.heappop(pending)
            name = slot_names[slots[i]]
            s = sums[name]
            s[0] += 1
            s[1] += pnls[i] > 0
            s[2] += pnls[i]
            s[3] += rets[i]
            s[4] += rets[i] * rets[i]
            if state[name] != "fired":
                verdict = rules.verdict(record(name))  # Rule 3, as the trader judges at each mark
                if not verdict.allowed:
                    state[name] = "fired"
                    fired.append(name)
                elif verdict.reasons[0].startswith("clone") and state[name] == "active":
                    state[name] = "cloned"
                    cloned.append(name)
            may_enter[name] = rules.win_rate_gate(record(name)).allowed  # Rule 2 (and fired)

    for i in order.tolist():
        if pending and pending[0][0] <= entry_ms[i]:
            close_until(entry_ms[i])
        name = slot_names[slots[i]]
        if not may_enter[name]:
            continue  # the entry is never made
        mult[i] = CLONE_MULTIPLIER if state[name] == "cloned" else 1.0
        if closed[i]:
            heapq.heappush(pending, (exit_ms[i], i))
    close_until(OPEN_MS)
    return mult, fired, cloned
