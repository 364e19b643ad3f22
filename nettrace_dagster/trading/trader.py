"""One trading tick: reconcile, then every new bar's signals → intents → the execution engine.

Per tick:
1. `engine.reconcile()` repairs anything a crash or timeout left open (before any new order).
2. Bars newer than the per-symbol cursor are traded in time order, at most `catch_up_bars` of
   them (1 on live markets: a stale signal is never traded; more on the simulator, whose market
   walks forward in bars rather than wall time). On each bar, exits go first (they are always
   allowed and free capital), then entries; entries of *different* strategies competing on one
   bar are ordered by the coordinator's Sharpe bandit, seeded by the bar, so a replay settles
   the same way. The bar's timestamp is the intent key: one bar, one client order id. Before a
   bar's intents are sent, the cursor is saved at the bars before it, so a crash repeats at most
   that bar — never earlier bars, whose signals would meet positions opened later — and
   repeating one bar is idempotent (its intents are keyed, and an entry and an exit of one
   strategy never share a bar).
   Every entry is judged on the bar's close of *every* symbol (the latest at or before the bar),
   so a loss in one held symbol is seen by Rule 1 before an entry in another. With
   `max_bar_age_s` (real markets), no entry is made on a bar older than that: stale signals only
   exit. Held positions whose exit expired or was cancelled are sold first, at the latest close.
3. The account is marked at the latest closes (equity curve, HARDSTOP latch, Rule 3 verdicts).
The strategies and the portfolio parameters come from the parameter set in force (the ledger's
FULL set, `paramsets.in_force`) unless given; `exit_rules.py` says how the nine portfolio
parameters (take-profit tiers, trailing stop, trade-fraction multiplier, minimum reserve, stricter
Rule 3 thresholds) are applied.
Only one tick per account runs at a time: a process lock the operating system releases when its
holder dies (`Coordinator.exclusive`), so a killed tick never blocks the next one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import select

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.execution.risk import MarkResult
from nettrace_dagster.ledger.models import Capital, Position, TraderCursor
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.paramsets.schema import default_portfolio
from nettrace_dagster.strategies import Signals, Strategy, get_strategy
from nettrace_dagster.strategies.registry import load_verified_strategy
from nettrace_dagster.trading.exit_rules import ExitRules, portfolio_rules


@dataclass
class TickReport:
    ran: bool = True
    reasons: list[str] = field(default_factory=list)
    bars: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    reconcile: dict[str, Any] = field(default_factory=dict)
    mark: MarkResult | None = None

    def counts(self) -> dict[str, int]:
        c = Counter("rejected" if not d["approved"] else d["status"] for d in self.decisions)
        return dict(c)


class Trader:
    def __init__(self, engine: ExecutionEngine, coordinator: Coordinator,
                 strategies: list[tuple[str, dict[str, Any]]] | None = None, catch_up_bars: int = 1,
                 max_bar_age_s: float | None = None, portfolio: dict[str, float] | None = None,
                 strategy_files: dict[str, dict[str, str]] | None = None) -> None:
        """`strategies` / `portfolio` / `strategy_files` default to the parameter set in force
        (the ledger's FULL set; the defaults when none was promoted)."""
        self.engine, self.coordinator = engine, coordinator
        if strategies is None or portfolio is None:
            current = in_force.current(engine.ledger)
            strategies = strategies if strategies is not None else list(current.strategies.items())
            portfolio = portfolio if portfolio is not None else current.portfolio
            strategy_files = strategy_files if strategy_files is not None else current.strategy_files
        self.strategies = strategies
        self.portfolio = {**default_portfolio(), **(portfolio or {})}
        self.strategy_files = dict(strategy_files or {})
        self.exit_rules = ExitRules.from_portfolio(self.portfolio)
        # Rule 3 thresholds of the set: only ever stricter than the account's own rules.
        engine.gate.rules = portfolio_rules(engine.gate.base_rules, self.portfolio)
        self.catch_up_bars = max(1, catch_up_bars)
        self.max_bar_age_s = max_bar_age_s

    def strategy(self, name: str) -> Strategy:
        """A built-in by name, or a promoted strategy file (its sha256 checked before it loads)."""
        spec = self.strategy_files.get(name)
        if spec:
            return load_verified_strategy(spec["path"], spec["sha256"])
        return get_strategy(name)

    def tick(self, candles: dict[str, pl.DataFrame]) -> TickReport:
        owner = f"trader:{self.engine.account}"
        with self.coordinator.exclusive("trading", owner) as mine:
            if not mine:
                return TickReport(ran=False, reasons=[f"{owner} is already trading (a live process holds its lock)"])
            lease = self.coordinator.begin("trading", owner, ttl_s=600)
            if lease.status != "running":
                return TickReport(ran=False, reasons=list(lease.reasons))
            try:
                return self._tick(candles)
            finally:
                self.coordinator.end(lease.activity_id)  # type: ignore[arg-type]

    def _tick(self, candles: dict[str, pl.DataFrame]) -> TickReport:
        report = TickReport(reconcile=self.engine.reconcile().to_dict())
        frames = {s: df for s, df in candles.items() if df.height}
        signals = {(s, name): self.strategy(name).run(df, params)
                   for s, df in frames.items() for name, params in self.strategies}
        highs = {s: df["high"].to_numpy() for s, df in frames.items()} if self.exit_rules.active else {}
        lows = {s: df["low"].to_numpy() for s, df in frames.items()} if self.exit_rules.active else {}
        times = {s: df["timestamp"].dt.epoch("ms").to_numpy() for s, df in frames.items()}
        closes = {s: df["close"].to_numpy() for s, df in frames.items()}
        start = {s: self._first_bar(s, times[s]) for s in frames}
        held = self._held()
        if self.exit_rules.active:
            self.exit_rules.load(self.engine, held)
        latest = {s: float(closes[s][-1]) for s in frames}
        for strategy, symbol, coid in self.engine.exits_to_rederive():
            if symbol in frames:  # its exit expired or was cancelled: the position is still to sell
                intent = Intent(strategy, symbol, "exit", latest[symbol], f"redo-{coid}", account=self.engine.account)
                self._record(report, self.engine.submit(intent, latest), intent, held)
        timeline = sorted({int(t) for s in frames for t in times[s][start[s]:]})
        stale_from = None if self.max_bar_age_s is None else (self.engine.clock() - self.max_bar_age_s) * 1000
        for t in timeline:
            bar = {s: int(np.searchsorted(times[s], t)) for s in frames}
            bar = {s: i for s, i in bar.items() if i < len(times[s]) and times[s][i] == t}
            marks = self._marks(t, times, closes)
            rule_exits = self.exit_rules.exits(self, t, bar, highs, lows, closes, held) if highs else []
            if rule_exits:  # take-profit tiers and trailing stop go first, like the backtest's
                self._advance(self._before(t, times))
                for intent in rule_exits:
                    self._record(report, self.engine.submit(intent, marks), intent, held)
            exits, entries = self._intents(t, bar, signals, closes, held)
            if entries and stale_from is not None and t < stale_from:
                report.reasons.append(f"{len(entries)} entr(ies) on a bar older than {self.max_bar_age_s:.0f}s "
                                      "not traded: a stale signal only exits")
                entries = []
            if (exits or entries) and not rule_exits:  # a crash can then only repeat this one bar
                self._advance(self._before(t, times))
            for intent in exits:
                self._record(report, self.engine.submit(intent, marks), intent, held)
            for intent in self._settle(entries, t):
                self._record(report, self.engine.submit(self._sized(intent), marks), intent, held)
            if highs:
                self.exit_rules.after_bar(t, bar, highs, held)
            report.bars += 1
        if timeline:
            self._advance({s: int(times[s][-1]) for s in frames})
        report.mark = self.engine.mark({s: float(closes[s][-1]) for s in frames})
        return report

    @staticmethod
    def _before(t: int, times: dict[str, np.ndarray]) -> dict[str, int]:
        """Each symbol's last bar strictly before bar time `t`: what is fully traded once t begins."""
        out = {}
        for s, ts in times.items():
            i = int(np.searchsorted(ts, t, side="left"))
            if i > 0:
                out[s] = int(ts[i - 1])
        return out

    @staticmethod
    def _marks(t: int, times: dict[str, np.ndarray], closes: dict[str, np.ndarray]) -> dict[str, float]:
        """Every symbol's latest close at or before bar time `t` (what the account is worth then)."""
        out = {}
        for s, ts in times.items():
            i = int(np.searchsorted(ts, t, side="right")) - 1
            if i >= 0:
                out[s] = float(closes[s][i])
        return out

    def _intents(self, t: int, bar: dict[str, int], signals: dict[tuple[str, str], Signals],
                 closes: dict[str, np.ndarray], held: set[tuple[str, str]]) -> tuple[list[Intent], list[Intent]]:
        key = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y%m%dT%H%M%S")
        exits, entries = [], []
        for symbol, i in sorted(bar.items()):
            price = float(closes[symbol][i])
            for name, _ in self.strategies:
                sig = signals[(symbol, name)]
                if (name, symbol) in held and sig.exits[i]:
                    exits.append(Intent(name, symbol, "exit", price, key, account=self.engine.account, bar_ms=t))
                elif (name, symbol) not in held and sig.entries[i] and not sig.exits[i]:
                    entries.append(Intent(name, symbol, "entry", price, key, float(sig.confidence[i]),
                                          int(sig.confirmations[i]), account=self.engine.account, bar_ms=t))
        return exits, entries

    def _settle(self, entries: list[Intent], t: int) -> list[Intent]:
        names = sorted({e.strategy for e in entries})
        if len(names) < 2:
            return entries
        order = {name: k for k, name in enumerate(self.coordinator.settle(names, seed=f"bar:{t}"))}
        return sorted(entries, key=lambda e: (order[e.strategy], e.symbol))

    def _sized(self, intent: Intent) -> Intent:
        """The entry with the set's sizing: `trade_fraction_mult` × the rules' position fraction of
        equity (never more than the rules allow: the engine caps it at the position budget), and
        no cash spent below `min_reserve_usd`. The neutral values leave the intent as it was."""
        mult, reserve = self.portfolio["trade_fraction_mult"], self.portfolio["min_reserve_usd"]
        rules = self.engine.rules
        if mult >= 1.0 and reserve <= rules.equity_floor_usd:
            return intent
        with self.engine.ledger.read() as s:
            cap = s.get(Capital, self.engine.account)
            equity, cash = (cap.last_equity, cap.cash) if cap is not None else (0.0, 0.0)
        wanted = min(rules.max_position_fraction * mult * max(equity, 0.0), max(cash - reserve, 0.0))
        return replace(intent, notional=max(wanted, 0.01))  # below the minimum order: refused, with why

    def _record(self, report: TickReport, d: Decision, intent: Intent, held: set[tuple[str, str]]) -> None:
        if d.duplicate:
            return  # already acted on in an earlier (or interrupted) tick
        if d.kind == "entry" and d.filled_qty > 0:
            held.add((intent.strategy, intent.symbol))
            if self.exit_rules.active:
                self.exit_rules.opened(intent, d)
        elif d.kind == "exit" and d.status == "filled" and intent.qty is None:
            held.discard((intent.strategy, intent.symbol))
            if self.exit_rules.active:
                self.exit_rules.closed(intent.strategy, intent.symbol)
        elif d.kind == "exit" and d.status == "filled" and self.exit_rules.active:
            if self.exit_rules.partial(intent, d):  # a tier that sold what was left closes the trip
                held.discard((intent.strategy, intent.symbol))
        report.decisions.append({"strategy": intent.strategy, "symbol": intent.symbol, "kind": d.kind,
                                 "key": intent.key, "approved": d.approved, "status": d.status,
                                 "qty": d.filled_qty, "price": d.avg_price, "reasons": list(d.reasons)})

    def _first_bar(self, symbol: str, times: np.ndarray) -> int:
        """Index of the first bar to trade: after the cursor, and within the catch-up window."""
        with self.engine.ledger.read() as s:
            cursor = s.get(TraderCursor, (self.engine.account, symbol))
        after = int(np.searchsorted(times, cursor.last_bar_ms, side="right")) if cursor else 0
        return max(after, len(times) - self.catch_up_bars)

    def _advance(self, last: dict[str, int]) -> None:
        with self.engine.ledger.tx() as s:
            if self.exit_rules.active:  # the exit rules' state moves with the cursor (one crash, one bar)
                self.exit_rules.save_in(s, self.engine.account)
            for symbol, ms in last.items():
                cur = s.get(TraderCursor, (self.engine.account, symbol))
                if cur is None:
                    s.add(TraderCursor(account=self.engine.account, symbol=symbol, last_bar_ms=ms))
                else:
                    cur.last_bar_ms = max(cur.last_bar_ms, ms)

    def _held(self) -> set[tuple[str, str]]:
        with self.engine.ledger.read() as s:
            return {(p.strategy, p.symbol) for p in s.scalars(
                select(Position).where(Position.account == self.engine.account, Position.qty > 0))}
