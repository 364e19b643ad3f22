"""`ParamSet`: the unit the optimizer, the promotion pipeline, the trader and the UI exchange.

JSON form (exactly):
    {"portfolio": {"tp0", "tp1", "tp2", "trailing_stop", "fire_threshold", "promote_threshold",
                   "clone_threshold", "trade_fraction_mult", "min_reserve_usd"},
     "strategies": {strategy_name: {param: value}}}

The nine portfolio numbers (docs/optimization.md has the long form):
- `tp0 < tp1 < tp2`: take-profit tiers above the entry price (fractions; 0 = off). Tier k sells
  the engine's tier share of the units (25 % / 25 % / the rest), the last enabled tier the rest.
- `trailing_stop`: exit when the low falls that fraction below the highest high since entry (0 = off).
- `fire_threshold`: the win rate below which Rule 3 fires a judged strategy (`Rules.fire_win_rate`).
- `clone_threshold`: the win rate a winner needs to be cloned (`Rules.clone_win_rate`).
- `promote_threshold`: the per-trade Sharpe a winner needs to be cloned, i.e. promoted to a second
  slot (`Rules.clone_min_sharpe`).
- `trade_fraction_mult`: scales the largest share of equity one entry may use
  (`Rules.max_position_fraction`); at most 1 (the rule's own number).
- `min_reserve_usd`: cash never traded, in USD, on top of the rules' reserve floor.

`default_param_set()` is today's behaviour: no tiers, no trailing stop, the rules' own thresholds,
full position size, the equity floor as reserve, every built-in strategy with its defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nettrace_dagster.paramsets.schema import PORTFOLIO_KEYS, check_portfolio, default_portfolio, param_set_id
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies.registry import STRATEGIES

__all__ = ["PORTFOLIO_KEYS", "ParamSet", "default_param_set", "default_portfolio"]


def _freeze(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}"[:200])
    return value


@dataclass(frozen=True)
class ParamSet:
    """A portfolio's nine numbers and each strategy's parameters; immutable, hashable by content."""

    portfolio: Mapping[str, float]
    strategies: Mapping[str, Mapping[str, Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "portfolio", _freeze(self.portfolio))
        object.__setattr__(self, "strategies", _freeze({k: _freeze(v) for k, v in self.strategies.items()}))

    def __hash__(self) -> int:
        return hash(self.content_id())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSet) and self.to_json() == other.to_json()

    def to_json(self) -> dict[str, Any]:
        return {"portfolio": {k: self.portfolio[k] for k in sorted(self.portfolio)},
                "strategies": {name: {k: v for k, v in sorted(p.items())} for name, p in sorted(self.strategies.items())}}

    def content_id(self) -> str:
        """sha256 of the canonical JSON, first 12 hex digits: same parameters, same id."""
        return param_set_id(self.to_json())

    def rules(self, base: Rules | None = None) -> Rules:
        """`base` (default the built-in rules) with this set's Rule 3 thresholds and position size.
        Through `Rules.tightened`: a set that would loosen a rule raises RulesError."""
        base = base if base is not None else Rules()
        p = self.portfolio
        changes = {"fire_win_rate": max(p["fire_threshold"], base.fire_win_rate),
                   "clone_win_rate": max(p["clone_threshold"], base.clone_win_rate),
                   "clone_min_sharpe": max(p["promote_threshold"], base.clone_min_sharpe),
                   "max_position_fraction": base.max_position_fraction * min(p["trade_fraction_mult"], 1.0)}
        return base.tightened(**changes)

    @classmethod
    def from_json(cls, data: Any) -> ParamSet:
        """Validate and build; ValueError (one line) naming the bad key or value."""
        if not isinstance(data, Mapping):
            raise ValueError(f"param set: expected an object with portfolio and strategies, got {type(data).__name__}")
        extra = sorted(set(data) - {"portfolio", "strategies"})
        if extra:
            raise ValueError(f"param set: unknown key {extra[0]!r} (expected portfolio, strategies)")
        for key in ("portfolio", "strategies"):
            if not isinstance(data.get(key), Mapping):
                raise ValueError(f"param set: {key!r} must be an object")
        portfolio = dict(data["portfolio"])
        for key in PORTFOLIO_KEYS:
            if key not in portfolio:
                raise ValueError(f"param set: portfolio.{key} is missing")
        for key in sorted(portfolio):
            if key not in PORTFOLIO_KEYS:
                raise ValueError(f"param set: unknown portfolio key {key!r}")
            _number(f"param set: portfolio.{key}", portfolio[key])
        check_portfolio(portfolio)
        strategies: dict[str, dict[str, Any]] = {}
        for name, params in data["strategies"].items():
            if name not in STRATEGIES:
                raise ValueError(f"param set: unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
            if not isinstance(params, Mapping):
                raise ValueError(f"param set: strategies.{name} must be an object of parameters")
            try:
                strategies[name] = STRATEGIES[name]().resolve_params(dict(params))
            except ValueError as exc:
                raise ValueError(f"param set: strategies.{name}: {exc}") from None
        return cls(portfolio, strategies)


def default_param_set() -> ParamSet:
    """Today's behaviour: the trader's rules and every built-in strategy with its defaults."""
    return ParamSet(default_portfolio(), {name: dict(cls.default_params) for name, cls in sorted(STRATEGIES.items())})
