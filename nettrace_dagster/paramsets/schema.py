"""A parameter set as plain JSON: `{"portfolio": {...nine keys...}, "strategies": {name: {param: value}}}`.

The one home of the contract: the nine portfolio keys, their defaults, the rule-side check of
their values and the content id. The optimizer's `ParamSet` (nettrace_dagster.optimize.paramset)
is a typed view of the same JSON built on these; the promotion pipeline, the trader and releases
use the plain-dict functions here (they must read sets naming generated strategies too).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies.registry import STRATEGIES

PORTFOLIO_KEYS = ("tp0", "tp1", "tp2", "trailing_stop", "fire_threshold", "promote_threshold",
                  "clone_threshold", "trade_fraction_mult", "min_reserve_usd")


class ParamSetError(ValueError):
    """A parameter set that is not the JSON contract (one line naming the problem)."""


def default_portfolio() -> dict[str, float]:
    """The portfolio parameters that change nothing: tiers and trailing stop off, Rule 3's own
    thresholds (fire / clone win rates, clone Sharpe for `promote_threshold`), full sizing, the
    rules' $10 reserve floor. The same numbers as the optimizer's `default_param_set()`."""
    rules = Rules()
    return {"tp0": 0.0, "tp1": 0.0, "tp2": 0.0, "trailing_stop": 0.0, "fire_threshold": rules.fire_win_rate,
            "promote_threshold": rules.clone_min_sharpe, "clone_threshold": rules.clone_win_rate,
            "trade_fraction_mult": 1.0, "min_reserve_usd": rules.equity_floor_usd}


def default_param_set() -> dict[str, Any]:
    """Every built-in strategy with its defaults, and the neutral portfolio parameters."""
    return {"portfolio": default_portfolio(),
            "strategies": {name: dict(cls.default_params) for name, cls in sorted(STRATEGIES.items())}}


def check_portfolio(p: dict[str, float]) -> None:
    """The nine numbers on the side the rules allow (ParamSetError naming the key otherwise): tiers
    and trailing stop fractions in [0, 1) with tiers increasing, Rule 3's thresholds only stricter,
    position size only smaller, the reserve never below the equity floor."""
    rules = Rules()
    for key in PORTFOLIO_KEYS:
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ParamSetError(f"param set: portfolio.{key} must be a finite number, got {v!r}"[:200])
    for key in ("tp0", "tp1", "tp2", "trailing_stop"):
        if not 0 <= p[key] < 1:
            raise ParamSetError(f"param set: portfolio.{key}={p[key]!r} must be a fraction in [0, 1) (0 = off)")
    levels = [p[k] for k in ("tp0", "tp1", "tp2") if p[k] > 0]
    if levels != sorted(set(levels)):
        raise ParamSetError(f"param set: portfolio tp0/tp1/tp2={p['tp0']}/{p['tp1']}/{p['tp2']} must increase "
                            "(0 = off)")
    floors = {"fire_threshold": rules.fire_win_rate, "clone_threshold": rules.clone_win_rate,
              "promote_threshold": rules.clone_min_sharpe}
    for key, floor in floors.items():
        high = 1.0 if key != "promote_threshold" else 100.0
        if not floor <= p[key] <= high:
            raise ParamSetError(f"param set: portfolio.{key}={p[key]!r} must be in [{floor:g}, {high:g}] "
                                "(Rule 3 may only be tightened)")
    if not 0 < p["trade_fraction_mult"] <= 1:
        raise ParamSetError(f"param set: portfolio.trade_fraction_mult={p['trade_fraction_mult']!r} must be in "
                            "(0, 1] (the rule's position size may only shrink)")
    if not rules.equity_floor_usd <= p["min_reserve_usd"] < 1e12:
        raise ParamSetError(f"param set: portfolio.min_reserve_usd={p['min_reserve_usd']!r} must be at least "
                            f"{rules.equity_floor_usd:g} (the equity floor)")


def validate_param_set(value: Any) -> dict[str, Any]:
    """The set with every portfolio key present and on the rules' side (missing keys take the
    defaults); ParamSetError otherwise. Strategy parameters are the strategies' own to check."""
    if not isinstance(value, dict):
        raise ParamSetError(f"a parameter set is a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - {"portfolio", "strategies"})
    if unknown:
        raise ParamSetError(f"unknown parameter-set key(s): {', '.join(unknown)}")
    portfolio = value.get("portfolio", {})
    strategies = value.get("strategies", {})
    if not isinstance(portfolio, dict) or not isinstance(strategies, dict):
        raise ParamSetError("'portfolio' and 'strategies' must be JSON objects")
    extra = sorted(set(portfolio) - set(PORTFOLIO_KEYS))
    if extra:
        raise ParamSetError(f"unknown portfolio parameter(s): {', '.join(extra)}")
    merged = {**default_portfolio(), **portfolio}
    check_portfolio(merged)
    if not strategies:
        raise ParamSetError("a parameter set names at least one strategy")
    for name, params in strategies.items():
        if not isinstance(params, dict):
            raise ParamSetError(f"strategy {name!r}: its parameters must be a JSON object")
    return {"portfolio": {k: float(merged[k]) for k in PORTFOLIO_KEYS},
            "strategies": {str(k): dict(v) for k, v in sorted(strategies.items())}}


def param_set_id(value: dict[str, Any]) -> str:
    """A content id: the same set always gets the same id (sha256 of its canonical JSON, 12 hex
    digits: the optimizer's `ParamSet.content_id` of the same JSON)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def loads(text: str) -> dict[str, Any]:
    try:
        return validate_param_set(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ParamSetError(f"parameter set is not JSON: {exc.msg} at line {exc.lineno}") from None


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
