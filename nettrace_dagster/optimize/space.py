"""The search space: the nine portfolio parameters and each strategy's own `param_space`.

Rule thresholds are searched only on the side the rules allow: each Rule 3 threshold from the
rules' own number (tightened by any `NETTRACE_RULE_*` setting) upwards, the position size from
the rule's down, the reserve from the equity floor up. Rule 2's entry gate (confidence and
confirmations) is not a searched parameter at all: every backtest gates entries with the rules'.
Ranges are in docs/optimization.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from nettrace_dagster.optimize.paramset import PORTFOLIO_KEYS, ParamSet
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies.base import Strategy
from nettrace_dagster.strategies.registry import STRATEGIES

OFF_BELOW = 0.002  # a tier or trailing stop below 0.2 % is "off": inside one bar's noise


@dataclass(frozen=True)
class Dim:
    kind: str  # "int" | "float"
    low: float
    high: float


def portfolio_space(rules: Rules | None = None, initial_cash: float = 100.0) -> dict[str, Dim]:
    """The nine portfolio dimensions, bounded by the rules (only the strict side is reachable)."""
    rules = rules if rules is not None else Rules()
    return {
        "tp0": Dim("float", 0.0, 0.02), "tp1": Dim("float", 0.0, 0.04), "tp2": Dim("float", 0.0, 0.08),
        "trailing_stop": Dim("float", 0.0, 0.05),
        "fire_threshold": Dim("float", rules.fire_win_rate, max(rules.fire_win_rate, 0.60)),
        "promote_threshold": Dim("float", rules.clone_min_sharpe, max(rules.clone_min_sharpe, 2.0)),
        "clone_threshold": Dim("float", rules.clone_win_rate, max(rules.clone_win_rate, 0.80)),
        "trade_fraction_mult": Dim("float", 0.25, 1.0),
        "min_reserve_usd": Dim("float", rules.equity_floor_usd, rules.equity_floor_usd + 0.4 * initial_cash),
    }


def strategy_space(strategies: Mapping[str, type[Strategy]] | None = None) -> dict[str, dict[str, Dim]]:
    """Each strategy's own `param_space` (name -> parameter -> Dim)."""
    strategies = strategies if strategies is not None else STRATEGIES
    return {name: {k: Dim(kind, lo, hi) for k, (kind, lo, hi) in cls.param_space.items()}
            for name, cls in sorted(strategies.items())}


def _suggest(trial: optuna.Trial, name: str, dim: Dim) -> Any:
    if dim.low == dim.high:
        return int(dim.low) if dim.kind == "int" else float(dim.low)
    if dim.kind == "int":
        return trial.suggest_int(name, int(dim.low), int(dim.high))
    return trial.suggest_float(name, float(dim.low), float(dim.high))


def clean_portfolio(p: dict[str, float]) -> dict[str, float]:
    """Tiers and trailing stop under OFF_BELOW become 0 (off); an enabled tier not above the
    previous enabled one is switched off, so tp0 < tp1 < tp2 holds for the enabled ones."""
    out = dict(p)
    for key in ("tp0", "tp1", "tp2", "trailing_stop"):
        if out[key] < OFF_BELOW:
            out[key] = 0.0
    last = 0.0
    for key in ("tp0", "tp1", "tp2"):
        if out[key] > 0 and out[key] <= last:
            out[key] = 0.0
        last = max(last, out[key])
    return out


def suggest_param_set(trial: optuna.Trial, space: tuple[dict[str, Dim], dict[str, dict[str, Dim]]]) -> ParamSet:
    """One point of the space as a ParamSet (portfolio keys as they are, strategy keys `name.param`)."""
    pspace, sspace = space
    portfolio = clean_portfolio({k: _suggest(trial, k, pspace[k]) for k in PORTFOLIO_KEYS})
    strategies = {name: {k: _suggest(trial, f"{name}.{k}", dim) for k, dim in dims.items()}
                  for name, dims in sspace.items()}
    return ParamSet(portfolio, strategies)


def param_set_from_trial_params(params: Mapping[str, Any], defaults: ParamSet) -> ParamSet:
    """Rebuild the ParamSet of a finished trial (its `params`), defaults for fixed dimensions."""
    portfolio = dict(defaults.portfolio)
    strategies = {name: dict(p) for name, p in defaults.strategies.items()}
    for key, value in params.items():
        if "." in key:
            name, param = key.split(".", 1)
            strategies.setdefault(name, {})[param] = value
        else:
            portfolio[key] = value
    return ParamSet(clean_portfolio(portfolio), strategies)
