"""The built-in strategies: `sma_cross` (the cross-check reference), `momentum`, `mean_reversion`.

Each one decides *when* (its trigger) and leaves *whether* to the evidence families
(`evidence.confirm`): confirmations and confidence come from the families other than the
trigger's, so no strategy can vouch for its own trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.strategies.base import Signals, Strategy, column, crossed_above, crossed_below
from nettrace_dagster.strategies.evidence import MOMENTUM, TREND, EvidenceConfig, confirm
from nettrace_dagster.strategies.indicators import crosses, remember, roc, rolling_std, rsi, sma, zscore_from


def rising_edge(condition: np.ndarray) -> np.ndarray:
    """True at i when `condition` holds at i and did not at i - 1 (never at bar 0)."""
    out = np.zeros(condition.shape[0], dtype=np.bool_)
    out[1:] = condition[1:] & ~condition[:-1]
    return out


def zscore(close: np.ndarray, window: int) -> np.ndarray:
    """(close − its `window` SMA) / its `window` std (0 where the std is 0, NaN in the warm-up);
    memoized by window inside `indicators.memoized()` (an optimizer's trials repeat windows)."""

    def compute() -> np.ndarray:
        return zscore_from(np.ascontiguousarray(close, dtype=np.float64), sma(close, window),
                           rolling_std(close, window))

    return remember("zscore", (close,), (window,), compute)


def zscore_py(close: np.ndarray, window: int) -> np.ndarray:
    """The numpy reference of `zscore` (tests check they agree)."""
    mean, std = sma(close, window), rolling_std(close, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (close - mean) / std, 0.0)
    z[np.isnan(mean)] = np.nan
    return z


class SmaCross(Strategy):
    """Long when the fast SMA crosses above the slow SMA, flat when it crosses back below.

    The cross is a trend trigger, so the trend family never confirms it: an entry trades when
    momentum, volume, volatility and the regime agree strongly enough (Rule 2).
    """

    name = "sma_cross"
    description = "fast/slow simple moving average crossover"
    default_params = {"fast": 10, "slow": 30}
    param_space = {"fast": ("int", 2, 100), "slow": ("int", 5, 400)}
    trigger_family = TREND

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        fast, slow = int(params["fast"]), int(params["slow"])
        if fast < 1 or slow < 1:
            raise ValueError("sma_cross: fast and slow must be >= 1")
        close = column(candles, "close")
        return self.from_averages(sma(close, fast), sma(close, slow), self.evidence(candles))

    def evidence(self, candles: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, confirmations) at every bar: independent of fast/slow, so sweeps share it."""
        return confirm(candles, self.trigger_family, EvidenceConfig())

    @staticmethod
    def from_averages(fast_ma: np.ndarray, slow_ma: np.ndarray,
                      evidence: tuple[np.ndarray, np.ndarray]) -> Signals:
        """Signals from precomputed averages and `evidence()` (arrays may be shared: read-only)."""
        entries, exits = crosses(fast_ma, slow_ma)
        confidence, confirmations = evidence
        return Signals(entries, exits, confidence, confirmations)

    def signal_factory(self, candles: pl.DataFrame,
                       param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Signals]:
        """One SMA per distinct window and one evidence pass, computed up front on every core,
        shared by all pairs."""
        close = column(candles, "close")
        windows = sorted({int(p[k]) for p in param_sets for k in ("fast", "slow")})
        if any(w < 1 for w in windows):
            raise ValueError("sma_cross: fast and slow must be >= 1")
        with ThreadPoolExecutor() as pool:
            scores = pool.submit(self.evidence, candles)
            averages = dict(zip(windows, pool.map(lambda w: sma(close, w), windows), strict=True))
            evidence = scores.result()

        def signals(params: dict[str, Any]) -> Signals:
            return self.from_averages(averages[int(params["fast"])], averages[int(params["slow"])], evidence)

        return signals


class Momentum(Strategy):
    """Long when the `lookback`-bar rate of change rises through `threshold`; flat when it falls
    through `exit_threshold`. A momentum trigger: confirmed by the trend (close above its rising
    `trend` SMA), volume (above its `vol_window` mean), volatility and regime families."""

    name = "momentum"
    description = "rate-of-change breakout confirmed by trend, volume, volatility and regime"
    default_params = {"lookback": 20, "threshold": 0.005, "exit_threshold": 0.0, "trend": 50, "vol_window": 20}
    param_space = {"lookback": ("int", 5, 120), "threshold": ("float", 0.001, 0.05),
                   "exit_threshold": ("float", -0.02, 0.01), "trend": ("int", 10, 400),
                   "vol_window": ("int", 5, 120)}
    trigger_family = MOMENTUM

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        close = column(candles, "close")
        threshold = float(params["threshold"])
        if threshold <= 0:
            raise ValueError("momentum: threshold must be > 0")
        r = roc(close, params["lookback"])
        entries = crossed_above(r, threshold)
        exits = crossed_below(r, float(params["exit_threshold"]))
        config = EvidenceConfig(trend_window=int(params["trend"]), volume_window=int(params["vol_window"]))
        confidence, confirmations = confirm(candles, self.trigger_family, config)
        return Signals(entries, exits, confidence, confirmations)


class MeanReversion(Strategy):
    """Long when the close is oversold on both oscillators — its z-score against the `window` mean
    below −`entry_z` and its RSI below `rsi_low` — from the bar where both first hold; flat when
    the z-score rises back through `exit_z`.

    The z-score and the RSI say one thing (price fell fast), so together they are the trigger, a
    momentum one. Confirmed by the trend (close above its rising `trend` SMA: a dip in an uptrend),
    volume, volatility (a dip, not a crash) and regime (BULL or SIDEWAYS: never a falling market)."""

    name = "mean_reversion"
    description = "z-score and RSI dip buying confirmed by trend, volume, volatility and regime"
    default_params = {"window": 20, "entry_z": 2.0, "exit_z": 0.0, "rsi_window": 14, "rsi_low": 30.0,
                      "trend": 200}
    param_space = {"window": ("int", 5, 200), "entry_z": ("float", 0.5, 4.0), "exit_z": ("float", -1.0, 1.5),
                   "rsi_window": ("int", 5, 50), "rsi_low": ("float", 10.0, 45.0), "trend": ("int", 20, 600)}
    trigger_family = MOMENTUM

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        close = column(candles, "close")
        # the evidence first and the z-score last: in a portfolio backtest the rolling std under
        # the z-score is the slot's longest pass, and the one idle workers can help with
        # (`indicators.split_range`) once their own slots are done
        config = EvidenceConfig(trend_window=int(params["trend"]), regime_accepts=("BULL", "SIDEWAYS"))
        confidence, confirmations = confirm(candles, self.trigger_family, config)
        rsi_values = rsi(close, params["rsi_window"])
        z = zscore(close, int(params["window"]))
        with np.errstate(invalid="ignore"):
            oversold = (z < -float(params["entry_z"])) & (rsi_values < float(params["rsi_low"]))
        entries = rising_edge(oversold)
        exits = crossed_above(z, float(params["exit_z"]))
        return Signals(entries, exits, confidence, confirmations)
