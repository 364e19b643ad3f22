"""Strategies: candles + parameters → per-bar signals (see docs/strategies.md)."""

from nettrace_dagster.strategies.base import Signals, Strategy, StrategyError
from nettrace_dagster.strategies.registry import STRATEGIES, get_strategy, load_strategy_file, params_in_force

__all__ = ["STRATEGIES", "Signals", "Strategy", "StrategyError", "get_strategy", "load_strategy_file", "params_in_force"]
