"""Regime labels: BULL / BEAR / SIDEWAYS per bar, from price alone.

Method (causal — a label uses only bars at or before it, so backtests split by regime never see
the future): fit a least-squares line to log(close) over the trailing `window` bars; its slope ×
window is the trend, the window's fitted return. Trend > REGIME_BULL_THRESHOLD → BULL,
< REGIME_BEAR_THRESHOLD → BEAR, else SIDEWAYS. A fitted slope is far less noisy than the
end-to-end return of the same window. To stop labels flickering at a threshold, a label changes
only after `confirm` consecutive bars agree. The first `window - 1` bars have no full window and
are labelled from what is there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

BULL, BEAR, SIDEWAYS = "BULL", "BEAR", "SIDEWAYS"
LABELS = (BULL, BEAR, SIDEWAYS)


@dataclass(frozen=True)
class RegimeConfig:
    bull_threshold: float = 0.01
    bear_threshold: float = -0.01
    window: int = 300
    confirm: int = 20

    def __post_init__(self) -> None:
        if not self.bear_threshold < self.bull_threshold:
            raise ValueError(f"REGIME_BEAR_THRESHOLD ({self.bear_threshold}) must be below "
                             f"REGIME_BULL_THRESHOLD ({self.bull_threshold})")
        if self.window < 2:
            raise ValueError(f"NETTRACE_REGIME_WINDOW must be at least 2, got {self.window}")


def rolling_trend(close: np.ndarray, window: int) -> np.ndarray:
    """Fitted log return over the trailing window (OLS slope × window), from running sums."""
    y = np.log(close)
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    cy, cty = np.cumsum(np.r_[0.0, y]), np.cumsum(np.r_[0.0, t * y])
    ct, ctt = np.cumsum(np.r_[0.0, t]), np.cumsum(np.r_[0.0, t * t])
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - window, 0)
    k = (hi - lo).astype(np.float64)
    sy, sty, st, stt = cy[hi] - cy[lo], cty[hi] - cty[lo], ct[hi] - ct[lo], ctt[hi] - ctt[lo]
    var = stt - st * st / k
    slope = np.divide(sty - st * sy / k, var, out=np.zeros(n), where=var > 0)
    return slope * window


def _debounce(raw: np.ndarray, confirm: int) -> np.ndarray:
    out = raw.copy()
    current, pending, run = raw[0], raw[0], 0
    for i, label in enumerate(raw):
        if label == current:
            run = 0
        elif label == pending:
            run += 1
            if run >= confirm:
                current, run = label, 0
        else:
            pending, run = label, 1
            if confirm <= 1:
                current, run = label, 0
        out[i] = current
    return out


def label_regimes(candles: pl.DataFrame, config: RegimeConfig) -> pl.DataFrame:
    """Per bar: timestamp, trend, regime."""
    if candles.height == 0:
        return pl.DataFrame(schema={"timestamp": candles.schema["timestamp"], "trend": pl.Float64,
                                    "regime": pl.String})
    trend = rolling_trend(candles["close"].to_numpy(), config.window)
    raw = np.where(trend > config.bull_threshold, 0, np.where(trend < config.bear_threshold, 1, 2))
    labels = np.array(LABELS)[_debounce(raw.astype(np.int8), config.confirm)]
    return pl.DataFrame({"timestamp": candles["timestamp"], "trend": trend, "regime": labels})


def balanced_accuracy(truth: pl.Series, predicted: pl.Series) -> float | None:
    """Mean per-class recall over the classes present in the truth (None without truth)."""
    mask = truth.is_not_null()
    if not mask.any():
        return None
    t, p = truth.filter(mask).to_numpy(), predicted.filter(mask).to_numpy()
    recalls = [float(np.mean(p[t == c] == c)) for c in LABELS if np.any(t == c)]
    return float(np.mean(recalls))


def regime_shares(regimes: pl.DataFrame) -> dict[str, float]:
    counts = regimes["regime"].value_counts()
    total = max(regimes.height, 1)
    found = dict(zip(counts["regime"].to_list(), counts["count"].to_list(), strict=True))
    return {label: round(found.get(label, 0) / total, 4) for label in LABELS}
