"""The built-in strategies: `sma_cross` (the cross-check reference), `momentum`, `mean_reversion`."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.strategies.base import Signals, Strategy, column, crossed_above, crossed_below
from nettrace_dagster.strategies.indicators import crosses, roc, rolling_std, rsi, sma


def _confidence(confirmations: np.ndarray, strength: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """0.55 for one confirmation, +0.15 per further one, +0.15 × strength in [0, 1]; 0 off entries."""
    strength = np.nan_to_num(np.clip(strength, 0.0, 1.0), nan=0.0)
    conf = 0.55 + 0.15 * (confirmations - 1) + 0.15 * strength
    return np.where(entries, np.clip(conf, 0.0, 1.0), 0.0)


class SmaCross(Strategy):
    """Long when the fast SMA crosses above the slow SMA, flat when it crosses back below.

    The reference strategy for cross-checks: every cross carries confidence 1.0 and 2
    confirmations (the cross and the fast-over-slow trend state), so it always passes Rule 2.
    """

    name = "sma_cross"
    description = "fast/slow simple moving average crossover"
    default_params = {"fast": 10, "slow": 30}
    param_space = {"fast": ("int", 2, 100), "slow": ("int", 5, 400)}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        fast, slow = int(params["fast"]), int(params["slow"])
        if fast < 1 or slow < 1:
            raise ValueError("sma_cross: fast and slow must be >= 1")
        close = column(candles, "close")
        return self.from_averages(sma(close, fast), sma(close, slow))

    @staticmethod
    def from_averages(fast_ma: np.ndarray, slow_ma: np.ndarray, dense: bool = True) -> Signals:
        """Signals from precomputed averages. `dense=False` returns confidence/confirmations as
        constant views (every cross has 1.0 and 2; only entry bars are ever read) — for sweeps."""
        entries, exits = crosses(fast_ma, slow_ma)
        n = entries.shape[0]
        if dense:
            return Signals(entries, exits, entries.astype(np.float64), entries.astype(np.int64) * 2)
        return Signals(entries, exits, np.broadcast_to(np.float64(1.0), (n,)),
                       np.broadcast_to(np.int64(2), (n,)))

    def signal_factory(self, candles: pl.DataFrame,
                       param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Signals]:
        """One SMA per distinct window, computed up front on every core, shared by all pairs."""
        close = column(candles, "close")
        windows = sorted({int(p[k]) for p in param_sets for k in ("fast", "slow")})
        if any(w < 1 for w in windows):
            raise ValueError("sma_cross: fast and slow must be >= 1")
        with ThreadPoolExecutor() as pool:
            averages = dict(zip(windows, pool.map(lambda w: sma(close, w), windows), strict=True))

        def signals(params: dict[str, Any]) -> Signals:
            return self.from_averages(averages[int(params["fast"])], averages[int(params["slow"])], dense=False)

        return signals


class Momentum(Strategy):
    """Long when the `lookback`-bar rate of change rises through `threshold`; flat when it falls
    through `exit_threshold`. Confirmations: the momentum itself, price above its `trend` SMA,
    volume above its `vol_window` average."""

    name = "momentum"
    description = "rate-of-change breakout confirmed by trend and volume"
    default_params = {"lookback": 20, "threshold": 0.005, "exit_threshold": 0.0, "trend": 50, "vol_window": 20}
    param_space = {"lookback": ("int", 5, 120), "threshold": ("float", 0.001, 0.05),
                   "exit_threshold": ("float", -0.02, 0.01), "trend": ("int", 10, 400),
                   "vol_window": ("int", 5, 120)}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        close, volume = column(candles, "close"), column(candles, "volume")
        threshold = float(params["threshold"])
        if threshold <= 0:
            raise ValueError("momentum: threshold must be > 0")
        r = roc(close, params["lookback"])
        entries = crossed_above(r, threshold)
        exits = crossed_below(r, float(params["exit_threshold"]))
        with np.errstate(invalid="ignore"):
            confirmations = (entries.astype(np.int64)
                             + (close > sma(close, params["trend"]))
                             + (volume > sma(volume, params["vol_window"])))
        confirmations = np.where(entries, confirmations, 0).astype(np.int64)
        strength = (r - threshold) / threshold
        return Signals(entries, exits, _confidence(confirmations, strength, entries), confirmations)


class MeanReversion(Strategy):
    """Long when the close's z-score against its `window` mean falls through −`entry_z`; flat when
    it rises back through `exit_z`. Confirmations: the z-score, RSI below `rsi_low`, price above its
    `trend` SMA (buy dips in an uptrend)."""

    name = "mean_reversion"
    description = "z-score dip buying confirmed by RSI and trend"
    default_params = {"window": 20, "entry_z": 2.0, "exit_z": 0.0, "rsi_window": 14, "rsi_low": 30.0,
                      "trend": 200}
    param_space = {"window": ("int", 5, 200), "entry_z": ("float", 0.5, 4.0), "exit_z": ("float", -1.0, 1.5),
                   "rsi_window": ("int", 5, 50), "rsi_low": ("float", 10.0, 45.0), "trend": ("int", 20, 600)}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        close = column(candles, "close")
        window = int(params["window"])
        entry_z = float(params["entry_z"])
        mean, std = sma(close, window), rolling_std(close, window)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(std > 0, (close - mean) / std, 0.0)
        z[np.isnan(mean)] = np.nan
        entries = crossed_below(z, -entry_z)
        exits = crossed_above(z, float(params["exit_z"]))
        with np.errstate(invalid="ignore"):
            confirmations = (entries.astype(np.int64)
                             + (rsi(close, params["rsi_window"]) < float(params["rsi_low"]))
                             + (close > sma(close, params["trend"])))
        confirmations = np.where(entries, confirmations, 0).astype(np.int64)
        strength = -z - entry_z
        return Signals(entries, exits, _confidence(confirmations, strength, entries), confirmations)
