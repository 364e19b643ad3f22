"""The portfolio parameters of a parameter set, applied by the trader.

- Take-profit tiers `tp0 < tp1 < tp2` and the trailing stop have the backtest engine's semantics
  (`backtest/params.py`, `backtest/kernel.py`): the trailing level is peak × (1 − trailing_stop),
  the peak being the entry price and the highs of the *completed* bars since entry; the stop is
  checked first (a bar whose low reaches it exits everything); otherwise tier k fires when the
  bar's high reaches entry × (1 + tpk) and sells `tpk_fraction` of the units bought (0.25, 0.25,
  the last enabled tier the rest). One difference, from acting on closed bars: the backtest fills
  at the level (or the open through a gap), the trader at the market after the bar (its close).
- `fire_threshold` and `clone_threshold` tighten Rule 3's fire and clone win rates, and
  `promote_threshold` the per-trade Sharpe a winner needs to be cloned (promoted to a second slot),
  as the optimizer's portfolio backtest does (never loosen: the stricter of the rule and the
  parameter wins).
- `trade_fraction_mult` scales the rules' position fraction (capped by the rules' budget) and
  `min_reserve_usd` keeps that much cash untouched (see `Trader._sized`).
The per-position state (entry price, units bought, peak, tiers sold) is kept in the ledger
(`ExitRuleState`, per account) and saved with the trader's cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nettrace_dagster.backtest.params import EngineParams
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.ledger.models import Position
from nettrace_dagster.ledger.promotion_tables import ExitRuleState
from nettrace_dagster.rules import Rules

if TYPE_CHECKING:
    from nettrace_dagster.execution.engine import ExecutionEngine


def portfolio_rules(base: Rules, portfolio: dict[str, float]) -> Rules:
    """`base` with the set's Rule 3 thresholds where they are stricter (never looser)."""
    changes = {}
    if portfolio.get("fire_threshold", 0.0) > base.fire_win_rate:
        changes["fire_win_rate"] = min(float(portfolio["fire_threshold"]), 1.0)
    if portfolio.get("clone_threshold", 0.0) > base.clone_win_rate:
        changes["clone_win_rate"] = min(float(portfolio["clone_threshold"]), 1.0)
    if portfolio.get("promote_threshold", 0.0) > base.clone_min_sharpe:
        changes["clone_min_sharpe"] = float(portfolio["promote_threshold"])
    return base.tightened(**changes) if changes else base


@dataclass
class _State:
    entry_price: float
    units: float
    peak: float
    tiers_done: int = 0  # bit k set: tier k sold
    last_bar_ms: int = 0


@dataclass
class ExitRules:
    trailing_stop: float
    levels: tuple[float, float, float]
    fractions: tuple[float, float, float]
    states: dict[tuple[str, str], _State] = field(default_factory=dict)
    account: str = ""

    @classmethod
    def from_portfolio(cls, portfolio: dict[str, float]) -> ExitRules:
        params = EngineParams(tp0=portfolio.get("tp0", 0.0), tp1=portfolio.get("tp1", 0.0),
                              tp2=portfolio.get("tp2", 0.0), trailing_stop=portfolio.get("trailing_stop", 0.0))
        levels, fractions = params.tiers()
        return cls(params.trailing_stop, levels, fractions)

    @property
    def active(self) -> bool:
        return self.trailing_stop > 0 or any(lv > 0 for lv in self.levels)

    def load(self, engine: ExecutionEngine, held: set[tuple[str, str]]) -> None:
        """The account's saved states; a held position without one (a crash between its fill and
        the next save) starts from its average cost."""
        self.account = engine.account
        with engine.ledger.read() as s:
            rows = {(r.strategy, r.symbol): r for r in s.scalars(
                select(ExitRuleState).where(ExitRuleState.account == engine.account))}
            positions = {(p.strategy, p.symbol): p for p in s.scalars(
                select(Position).where(Position.account == engine.account, Position.qty > 0))}
        self.states = {}
        for key in held:
            row, pos = rows.get(key), positions.get(key)
            if row is not None:
                self.states[key] = _State(row.entry_price, row.units, row.peak, row.tiers_done, row.last_bar_ms)
            elif pos is not None and pos.qty > 0:
                price = pos.cost / pos.qty
                self.states[key] = _State(price, pos.qty, price)

    def exits(self, trader: Any, t: int, bar: dict[str, int], highs: dict[str, np.ndarray],
              lows: dict[str, np.ndarray], closes: dict[str, np.ndarray],
              held: set[tuple[str, str]]) -> list[Intent]:
        """The exits the tiers and the trailing stop ask for on bar `t` (before signals)."""
        key = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y%m%dT%H%M%S")
        out: list[Intent] = []
        for (strategy, symbol), st in sorted(self.states.items()):
            i = bar.get(symbol)
            if i is None or (strategy, symbol) not in held or t <= st.last_bar_ms:
                continue
            price = float(closes[symbol][i])
            account = trader.engine.account
            if self.trailing_stop > 0 and lows[symbol][i] <= st.peak * (1.0 - self.trailing_stop):
                out.append(Intent(strategy, symbol, "exit", price, f"{key}-trail", account=account, bar_ms=t))
                continue
            for k, level in enumerate(self.levels):
                if level <= 0 or st.tiers_done & (1 << k) or highs[symbol][i] < st.entry_price * (1.0 + level):
                    continue
                qty = self.fractions[k] * st.units
                last = self.fractions[k] >= 1.0  # the last enabled tier sells the rest
                out.append(Intent(strategy, symbol, "exit", price, f"{key}-tp{k}", qty=None if last else qty,
                                  account=account, bar_ms=t))
                st.tiers_done |= 1 << k
        return out

    def after_bar(self, t: int, bar: dict[str, int], highs: dict[str, np.ndarray],
                  held: set[tuple[str, str]]) -> None:
        """The bar is complete: its high raises the peak from the next bar on."""
        for (strategy, symbol), st in self.states.items():
            i = bar.get(symbol)
            if i is not None and (strategy, symbol) in held and t > st.last_bar_ms:
                st.peak = max(st.peak, float(highs[symbol][i]))
                st.last_bar_ms = t

    def opened(self, intent: Intent, d: Decision) -> None:
        price = d.avg_price or intent.price
        # The entry bar itself counts as done: its high came before the fill at its close.
        self.states[(intent.strategy, intent.symbol)] = _State(price, d.filled_qty, price, 0, intent.bar_ms or 0)

    def closed(self, strategy: str, symbol: str) -> None:
        self.states.pop((strategy, symbol), None)

    def partial(self, intent: Intent, d: Decision) -> bool:
        """A tier sold part; True when nothing is left (the trip closed)."""
        st = self.states.get((intent.strategy, intent.symbol))
        if st is None:
            return False
        sold = sum(self.fractions[k] for k in range(3) if self.levels[k] > 0 and st.tiers_done & (1 << k))
        if sold >= 1.0 - 1e-9:
            self.closed(intent.strategy, intent.symbol)
            return True
        return False

    def save_in(self, s: Session, account: str) -> None:
        s.execute(delete(ExitRuleState).where(ExitRuleState.account == account))
        for (strategy, symbol), st in self.states.items():
            s.add(ExitRuleState(account=account, strategy=strategy, symbol=symbol, entry_price=st.entry_price,
                                units=st.units, peak=st.peak, tiers_done=st.tiers_done, last_bar_ms=st.last_bar_ms))
