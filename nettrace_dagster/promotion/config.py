"""The pipeline's windows and thresholds, from the settings (README's table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PromotionConfig:
    cold_lookback_days: float = 7.0
    cold_min_sharpe: float = 0.5
    warm_window_s: float = 4 * 3600.0
    warm_min_edge: float = 0.10
    limited_window_s: float = 24 * 3600.0
    limited_min_edge: float = 0.15
    limited_fraction: float = 0.10
    edge_floor_fraction: float = 0.001  # of sleeve capital: the smallest baseline P&L an edge is taken of
    min_fills: int = 1  # a sleeve with fewer filled orders in its window has no evidence
    # A window without `min_fills` fills is inconclusive, not a failure (a trend set may wait hours
    # for its move): it is extended by one more window, at most this many times, then rejected.
    max_extensions: int = 2
    require_approval: bool = False
    max_daily_loss_usd: float = 5.0
    max_sharpe_drop: float = 0.30
    max_drawdown: float = 0.08
    guard_min_marks: int = 30  # equity marks since activation before the Sharpe guard judges
    sleeve_capital: float = 100.0  # WARM sleeves' paper capital (the account's starting capital)

    @classmethod
    def from_settings(cls, settings: Any) -> PromotionConfig:
        v = settings.values
        return cls(cold_lookback_days=float(v["PARAM_OPT_COLD_LOOKBACK_DAYS"]),
                   cold_min_sharpe=float(v["PARAM_OPT_COLD_MIN_SHARPE"]),
                   warm_window_s=float(v["PARAM_OPT_WARM_HOURS"]) * 3600.0,
                   warm_min_edge=float(v["PARAM_OPT_WARM_MIN_EDGE"]),
                   limited_window_s=float(v["PARAM_OPT_LIMITED_HOURS"]) * 3600.0,
                   limited_min_edge=float(v["PARAM_OPT_LIMITED_MIN_EDGE"]),
                   limited_fraction=float(v["PARAM_OPT_LIMITED_FRACTION"]),
                   max_extensions=int(v["PARAM_OPT_MAX_EXTENSIONS"]),
                   require_approval=bool(v["NETTRACE_REQUIRE_APPROVAL"]),
                   max_daily_loss_usd=float(v["PARAM_OPT_MAX_DAILY_LOSS_USD"]),
                   max_sharpe_drop=float(v["PARAM_OPT_ROLLBACK_SHARPE_DROP"]),
                   max_drawdown=float(v["PARAM_OPT_ROLLBACK_MAX_DRAWDOWN"]),
                   sleeve_capital=float(v["NETTRACE_INITIAL_CAPITAL_USD"]))
