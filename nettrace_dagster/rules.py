"""The immutable capital rules. Backtest, paper and live all read them from here.

This module is the single source of each rule's number and of each rule's test. The entry gate
(Rule 2) is used by the backtest engine (vectorised, `entry_gate_mask`) and by the execution layer
(one intent, `entry_gate` through `Rules.check_entry`); both call the same comparison so the two
can never disagree. The execution engine and the coordinator only *apply* what is decided here.

Configuration may tighten a rule, never loosen it: `load_rules` reads `NETTRACE_RULE_<FIELD>`
(and `PARAM_OPT_MAX_DAILY_LOSS_USD`) and `Rules.tightened` refuses any value on the loose side of
the built-in number with a one-line `RulesError`. See docs/execution.md for the interpretations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from nettrace_dagster.settings import SettingsError

# Rule 2 — always make money: an entry needs enough confidence and confirming signals.
MIN_ENTRY_CONFIDENCE = 0.70
MIN_CONFIRMATIONS = 2
# Rule 1 — never lose money.
EQUITY_FLOOR_USD = 10.0
MAX_DRAWDOWN = 0.30
MAX_DAILY_LOSS_USD = 5.0
PRINCIPAL_LOCK_GAIN = 1.00  # principal locks once gains exceed 100 % of it
# Rule 2 — a strategy below this win rate may not open trades, once it has this many closed trades.
MIN_WIN_RATE = 0.40
WIN_RATE_MIN_TRADES = 10
# Rule 3 — grow faster.
REINVEST_MIN, REINVEST_MAX = 0.20, 0.35
REINVEST_FRACTION = 0.25


def at_line(value: float, line: float) -> bool:
    """`value >= line` for a Rule 1 line, where float rounding must not decide: an account exactly
    on the line in cents (a 30 % drawdown to the cent, exactly $5 lost) is on it, so the check
    errs on the safe side by a billionth of the line."""
    return value >= line - 1e-9 * max(1.0, abs(line))


class RulesError(SettingsError):
    """A rule configuration that would loosen a rule (or is not a number); one line."""


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]


def entry_gate_mask(confidence: np.ndarray, confirmations: np.ndarray,
                    min_confidence: float = MIN_ENTRY_CONFIDENCE,
                    min_confirmations: int = MIN_CONFIRMATIONS) -> np.ndarray:
    """Bars whose entry signal passes Rule 2. Thresholds may be tightened, never loosened."""
    min_confidence = max(min_confidence, MIN_ENTRY_CONFIDENCE)
    min_confirmations = max(min_confirmations, MIN_CONFIRMATIONS)
    return (np.asarray(confidence) >= min_confidence) & (np.asarray(confirmations) >= min_confirmations)


def entry_gate(confidence: float, confirmations: int,
               min_confidence: float = MIN_ENTRY_CONFIDENCE,
               min_confirmations: int = MIN_CONFIRMATIONS) -> GateDecision:
    """Rule 2 for one intent, with the reasons a trader reads when it says no."""
    ok = bool(entry_gate_mask(np.array([confidence]), np.array([confirmations]),
                              min_confidence, min_confirmations)[0])
    if ok:
        return GateDecision(True, ())
    reasons = []
    floor_c = max(min_confidence, MIN_ENTRY_CONFIDENCE)
    floor_n = max(min_confirmations, MIN_CONFIRMATIONS)
    if not confidence >= floor_c:
        # every significant digit: 0.6999 must never read as "0.70 < 0.70"
        reasons.append(f"confidence {confidence:.15g} < {floor_c:.15g} (Rule 2)")
    if not confirmations >= floor_n:
        reasons.append(f"{confirmations} confirming signal(s) < {floor_n} (Rule 2)")
    return GateDecision(False, tuple(reasons))


@dataclass(frozen=True)
class AccountSnapshot:
    """What the rules need to know about one account, valued at current marks (USD)."""

    equity: float  # cash + positions at mark
    cash: float
    principal: float  # capital paid in
    peak_equity: float
    day_start_equity: float  # equity at the first mark of the current UTC day
    locked_profit: float = 0.0  # realised profit not reinvested (Rule 3), never traded again
    principal_locked: bool = False  # latched by Rule 1 once gains exceeded PRINCIPAL_LOCK_GAIN
    reserved: float = 0.0  # capital held by live reservations and orders in flight
    hardstop: bool = False  # the persisted HARDSTOP latch


@dataclass(frozen=True)
class StrategyRecord:
    """One strategy's closed round trips (Rule 2 win rate, Rule 3 fire/clone)."""

    trades: int = 0
    wins: int = 0
    net_pnl: float = 0.0
    sharpe: float = 0.0  # mean / std of per-trade returns (not annualised)
    fired: bool = False

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0


# field -> (direction, bound): +1 means a higher value is tighter, -1 a lower one; 0 means the value
# must stay inside the band (lo, hi). `bound` is the absolute limit a tightened value may reach.
_TIGHTEN: dict[str, tuple[int, float]] = {
    "equity_floor_usd": (+1, math.inf), "max_drawdown": (-1, 0.0), "max_daily_loss_usd": (-1, 0.0),
    "principal_lock_gain": (-1, 0.0), "min_confidence": (+1, 1.0), "min_confirmations": (+1, math.inf),
    "min_win_rate": (+1, 1.0), "win_rate_min_trades": (-1, 1), "fire_min_trades": (-1, 1),
    "fire_win_rate": (+1, 1.0), "clone_min_trades": (+1, math.inf), "clone_win_rate": (+1, 1.0),
    "clone_min_sharpe": (+1, math.inf), "max_position_fraction": (-1, 0.0),
    "min_reserve_fraction": (+1, 1.0),
}
_BANDS = {"reinvest_fraction": (REINVEST_MIN, REINVEST_MAX)}
_RULE_OF = {"equity_floor_usd": 1, "max_drawdown": 1, "max_daily_loss_usd": 1, "principal_lock_gain": 1,
            "min_confidence": 2, "min_confirmations": 2, "min_win_rate": 2, "win_rate_min_trades": 2,
            "min_reserve_fraction": 1, "max_position_fraction": 1}
ENV_NAMES = {"max_daily_loss_usd": "PARAM_OPT_MAX_DAILY_LOSS_USD"}  # the seed's own name


@dataclass(frozen=True)
class Rules:
    """Every number of Rules 1–3. Build with `load_rules()` / `Rules().tightened(...)`."""

    equity_floor_usd: float = EQUITY_FLOOR_USD
    max_drawdown: float = MAX_DRAWDOWN
    max_daily_loss_usd: float = MAX_DAILY_LOSS_USD
    principal_lock_gain: float = PRINCIPAL_LOCK_GAIN
    min_confidence: float = MIN_ENTRY_CONFIDENCE
    min_confirmations: int = MIN_CONFIRMATIONS
    min_win_rate: float = MIN_WIN_RATE
    win_rate_min_trades: int = WIN_RATE_MIN_TRADES
    reinvest_fraction: float = REINVEST_FRACTION
    fire_min_trades: int = 10  # a strategy is judged (fired) after this many round trips
    fire_win_rate: float = MIN_WIN_RATE  # … when below this win rate, or when it lost money
    clone_min_trades: int = 20
    clone_win_rate: float = 0.60
    clone_min_sharpe: float = 0.50
    max_position_fraction: float = 0.25  # one entry's notional, as a share of equity
    min_reserve_fraction: float = 0.10  # cash kept untouched: max(floor, this share of equity)

    def tightened(self, **changes: Any) -> Rules:
        """A copy with `changes`; RulesError if any change loosens a rule or leaves its band."""
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in _TIGHTEN and name not in _BANDS:
                raise RulesError(f"unknown rule {name!r}")
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise RulesError(f"{_env_name(name)}={value!r} is not a number") from None
            if not math.isfinite(value):
                raise RulesError(f"{_env_name(name)}={value!r} is not a finite number")
            base = getattr(self, name)
            if isinstance(base, int) and value != int(value):
                raise RulesError(f"{_env_name(name)}={value:g} must be a whole number")
            if name in _BANDS:
                lo, hi = _BANDS[name]
                if not lo <= value <= hi:
                    raise RulesError(f"{_env_name(name)}={value:g} is outside Rule 3's band [{lo:g}, {hi:g}]")
            else:
                direction, bound = _TIGHTEN[name]
                loose = value < base if direction > 0 else value > base
                past = value > bound if direction > 0 else value < bound
                if loose:
                    side = "≥" if direction > 0 else "≤"
                    raise RulesError(f"{_env_name(name)}={value:g} loosens Rule {_RULE_OF.get(name, 3)} "
                                     f"(built-in {base:g}); configuration may only tighten it ({side} {base:g})")
                if past or (direction < 0 and bound == 0.0 and value <= 0):
                    raise RulesError(f"{_env_name(name)}={value:g} is past the rule's limit {bound:g}")
            checked[name] = int(value) if isinstance(base, int) else value
        return replace(self, **checked)

    # --- Rule 1 -----------------------------------------------------------------------------
    def hardstop_reasons(self, acct: AccountSnapshot) -> tuple[str, ...]:
        """Why HARDSTOP must be on right now (empty: no trigger holds)."""
        reasons = []
        if at_line(self.equity_floor_usd, acct.equity):
            reasons.append(f"equity ${acct.equity:.2f} ≤ floor ${self.equity_floor_usd:.2f} (Rule 1)")
        dd = self.drawdown(acct)
        if at_line(dd, self.max_drawdown):
            reasons.append(f"drawdown {dd:.1%} from peak ${acct.peak_equity:.2f} ≥ {self.max_drawdown:.0%} (Rule 1)")
        return tuple(reasons)

    @staticmethod
    def drawdown(acct: AccountSnapshot) -> float:
        return max(0.0, 1.0 - acct.equity / acct.peak_equity) if acct.peak_equity > 0 else 0.0

    @staticmethod
    def daily_loss(acct: AccountSnapshot) -> float:
        return max(0.0, acct.day_start_equity - acct.equity)

    def principal_should_lock(self, equity: float, principal: float) -> bool:
        """Gains *exceed* the lock threshold (strictly), e.g. equity > 2 × principal by default."""
        return principal > 0 and equity - principal > self.principal_lock_gain * principal

    def reserve_floor(self, equity: float) -> float:
        """Cash no entry and no reservation may touch."""
        return max(self.equity_floor_usd, self.min_reserve_fraction * max(equity, 0.0))

    def free_capital(self, acct: AccountSnapshot) -> float:
        """Cash that entries and reservations may use: after locks, reserve and reservations."""
        locked = acct.locked_profit + (acct.principal if acct.principal_locked else 0.0)
        return max(0.0, acct.cash - locked - self.reserve_floor(acct.equity) - acct.reserved)

    def position_budget(self, acct: AccountSnapshot) -> float:
        """Largest notional one entry may have."""
        return min(self.free_capital(acct), self.max_position_fraction * max(acct.equity, 0.0))

    def status(self, acct: AccountSnapshot) -> dict[str, Any]:
        """Where the account stands against every Rule 1 line (for status, portfolio, sensors)."""
        triggers = self.hardstop_reasons(acct)
        loss = self.daily_loss(acct)
        blocked = list(triggers)
        if acct.hardstop:
            blocked.insert(0, "HARDSTOP is on: exits only (Rule 1)")
        if at_line(loss, self.max_daily_loss_usd):
            blocked.append(f"daily loss ${loss:.2f} ≥ limit ${self.max_daily_loss_usd:.2f} (Rule 1)")
        return {
            "entries_allowed": not blocked, "blocked_by": blocked, "hardstop": acct.hardstop,
            "hardstop_triggers": list(triggers), "equity": acct.equity, "equity_floor": self.equity_floor_usd,
            "peak_equity": acct.peak_equity, "drawdown": self.drawdown(acct), "max_drawdown": self.max_drawdown,
            "daily_pnl": acct.equity - acct.day_start_equity, "daily_loss_limit": self.max_daily_loss_usd,
            "principal_locked": acct.principal_locked, "locked_profit": acct.locked_profit,
            "reserve_floor": self.reserve_floor(acct.equity), "free_capital": self.free_capital(acct),
        }

    # --- Rule 2 -----------------------------------------------------------------------------
    def win_rate_gate(self, record: StrategyRecord) -> GateDecision:
        if record.fired:
            return GateDecision(False, ("strategy was fired (Rule 3)",))
        if record.trades >= self.win_rate_min_trades and record.win_rate < self.min_win_rate:
            return GateDecision(False, (f"win rate {record.win_rate:.0%} over {record.trades} trades "
                                        f"< {self.min_win_rate:.0%} (Rule 2)",))
        return GateDecision(True, ())

    def check_entry(self, acct: AccountSnapshot, record: StrategyRecord, confidence: float,
                    confirmations: int, cost_usd: float = 0.0) -> GateDecision:
        """Every rule an entry must pass. `cost_usd` is the entry's immediate cost (fees and
        slippage): an entry may not itself push equity across a Rule 1 line."""
        reasons = list(entry_gate(confidence, confirmations, self.min_confidence, self.min_confirmations).reasons)
        reasons += self.win_rate_gate(record).reasons
        if acct.hardstop:
            reasons.append("HARDSTOP is on: exits only (Rule 1)")
        triggers = self.hardstop_reasons(acct)
        reasons += triggers
        after = replace(acct, equity=acct.equity - cost_usd)
        if not triggers and self.hardstop_reasons(after):
            reasons.append(f"entry cost ${cost_usd:.4f} would trip HARDSTOP (Rule 1)")
        loss = self.daily_loss(acct)
        if at_line(loss, self.max_daily_loss_usd):
            reasons.append(f"daily loss ${loss:.2f} ≥ limit ${self.max_daily_loss_usd:.2f} (Rule 1)")
        elif at_line(self.daily_loss(after), self.max_daily_loss_usd):
            reasons.append(f"entry cost ${cost_usd:.4f} would reach the daily loss limit (Rule 1)")
        return GateDecision(not reasons, tuple(reasons))

    # --- Rule 3 -----------------------------------------------------------------------------
    def split_profit(self, realised: float) -> tuple[float, float]:
        """(reinvested, locked) shares of a realised result; a loss is all 'reinvested' (it
        reduces tradable cash) and locks nothing."""
        if realised <= 0:
            return realised, 0.0
        reinvested = realised * self.reinvest_fraction
        return reinvested, realised - reinvested

    def verdict(self, record: StrategyRecord) -> GateDecision:
        """Fire (allowed=False) or clone (reason starts with 'clone') a strategy, or keep it."""
        if record.trades >= self.fire_min_trades and (record.net_pnl < 0 or record.win_rate < self.fire_win_rate):
            return GateDecision(False, (f"fire: {record.trades} trades, win rate {record.win_rate:.0%}, "
                                        f"net ${record.net_pnl:.2f} (Rule 3)",))
        if (record.trades >= self.clone_min_trades and record.win_rate >= self.clone_win_rate
                and record.sharpe >= self.clone_min_sharpe and record.net_pnl > 0):
            return GateDecision(True, (f"clone: win rate {record.win_rate:.0%}, Sharpe {record.sharpe:.2f} (Rule 3)",))
        return GateDecision(True, ("keep",))


def _env_name(name: str) -> str:
    return ENV_NAMES.get(name, f"NETTRACE_RULE_{name.upper()}")


def rule_env_names() -> dict[str, str]:
    """field -> environment variable, for every configurable rule."""
    return {f.name: _env_name(f.name) for f in fields(Rules)}


def load_rules(settings: Any) -> Rules:
    """The rules with any tightening the settings carry; RulesError on loosening. The settings are
    passed in (read once, where the program starts), never looked up here."""
    changes: dict[str, Any] = {}
    for name, var in rule_env_names().items():
        raw = settings.values.get(var)
        if raw is not None and str(raw).strip() != "":
            changes[name] = raw
    base = Rules()
    # An unchanged default (e.g. the seed's PARAM_OPT_MAX_DAILY_LOSS_USD=5.0) is no change.
    return base.tightened(**{k: v for k, v in changes.items() if not _same(v, getattr(base, k))})


def _same(raw: Any, default: float) -> bool:
    try:
        return float(raw) == float(default)
    except (TypeError, ValueError):
        return False
