"""What counts as a confirmation (Rule 2): the evidence families, their tests, the count and the
confidence. Every strategy — built-in, templated or generated — scores its entries here, so the
execution layer, the backtest engine and the validator all read one definition.

Rule 2 asks an entry for confidence ≥ 0.70 and ≥ 2 *independent* confirming signals. Two
conditions that restate one fact ("the fast MA crossed the slow MA" and "the fast MA is above the
slow MA") are one signal, so confirmations are counted per *family* of evidence, not per
condition. Each family has one test, read at the close of bar i from bars ≤ i only (causal):

- `trend`: the close is above its `trend_window` SMA and that SMA is rising (above its value
  `trend_window // 10` bars earlier). Strength: the distance above the SMA in units of the move
  volatility predicts over the window (ln(close / SMA) / (σ · √window)).
- `momentum`: the `momentum_window`-bar rate of change is positive and the `rsi_window` RSI is
  above 50. Strength: (RSI − 50) / 25.
- `volume`: the bar's volume is above its `volume_window` mean. Strength: volume / mean − 1.
- `volatility`: realised volatility (σ, the std of log returns over `volatility_window` bars) is
  inside the band [0.5, 1.5] × its own `volatility_baseline`-bar mean: neither a spike nor a dead
  market. Strength: a tent peaking at 1 × the baseline, 0 at the band's edges.
- `regime`: the causal trend-regime label (`nettrace_dagster.regimes`, the regimes asset's method
  with its default window, thresholds and debounce) is one the strategy accepts (`BULL`; a dip
  buyer may accept `SIDEWAYS` too). Strength: 0.5 + fitted window return / 0.04.

Strengths are clipped to [0, 1] and are 0 where the family does not agree.

The trigger is not a confirmation, and neither is anything else from the trigger's family: a
strategy names the family its trigger belongs to (`Strategy.trigger_family`; a moving-average cross
is `trend`, a rate-of-change or z-score/RSI trigger is `momentum`), and that family is left out of
the count. `confirmations[i]` is the number of the other families agreeing at bar i (0–4).

`confidence[i]` combines the agreeing families' strengths as independent pieces of evidence
(noisy-OR): each agreeing family f carries weight w_f = 0.25 + 0.45 · strength_f, and
confidence = 1 − Π (1 − w_f). One family alone never reaches 0.70; two reach it only when their
evidence is reasonably strong (two at half strength: 0.72); four at full strength: 0.99.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numba as nb
import numpy as np
import polars as pl

from nettrace_dagster.regimes import LABELS, rolling_trend
from nettrace_dagster.strategies.indicators import remember, roc, rolling_std, rsi, sma, split_range

TREND, MOMENTUM, VOLUME, VOLATILITY, REGIME = "trend", "momentum", "volume", "volatility", "regime"
FAMILIES: tuple[str, ...] = (TREND, MOMENTUM, VOLUME, VOLATILITY, REGIME)

# Noisy-OR weight of an agreeing family: EVIDENCE_FLOOR at zero strength, FLOOR + SPAN at full.
# Full strength (0.70) alone equals Rule 2's confidence floor, so one family is never more than
# "enough on its own" — and the count gate still asks for a second one.
EVIDENCE_FLOOR = 0.25
EVIDENCE_SPAN = 0.45
VOLATILITY_BAND = (0.5, 1.5)  # realised vol / its baseline: below is a dead market, above a spike
RSI_NEUTRAL = 50.0
RSI_FULL = 25.0  # RSI points above neutral that count as full momentum strength
REGIME_FULL = 0.04  # fitted window return that takes regime strength from 0.5 to 1


@dataclass(frozen=True)
class EvidenceConfig:
    """Windows of the family tests. Strategies map their own parameters onto these (e.g.
    momentum's `trend` → `trend_window`); the regime defaults are the regimes asset's."""

    trend_window: int = 100
    momentum_window: int = 20
    rsi_window: int = 14
    volume_window: int = 20
    volatility_window: int = 20
    volatility_baseline: int = 200
    regime_window: int = 300
    regime_bull: float = 0.01
    regime_bear: float = -0.01
    regime_confirm: int = 20
    regime_accepts: tuple[str, ...] = ("BULL",)

    def __post_init__(self) -> None:
        for name in ("trend_window", "momentum_window", "rsi_window", "volume_window", "volatility_window",
                     "volatility_baseline", "regime_confirm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"evidence {name} must be a whole number >= 1, got {value!r}")
        if self.volatility_window < 2 or self.regime_window < 2:
            raise ValueError("evidence volatility_window and regime_window must be >= 2")
        if not self.regime_bear < self.regime_bull:
            raise ValueError("evidence regime_bear must be below regime_bull")
        if not self.regime_accepts or not set(self.regime_accepts) <= set(LABELS):
            raise ValueError(f"evidence regime_accepts must be a non-empty subset of {LABELS}, "
                             f"got {self.regime_accepts!r}")


class Family(NamedTuple):
    """One family's verdict per bar: does it support a long entry, and how strongly."""

    agrees: np.ndarray  # bool[n]
    strength: np.ndarray  # float64[n] in [0, 1]; 0 where it does not agree


@dataclass(frozen=True)
class Evidence:
    """The families' verdicts on one candle series (only the families that were gathered)."""

    families: dict[str, Family]
    n: int

    def count(self, exclude: str | None = None) -> np.ndarray:
        """Confirmations per bar: families agreeing, each once, the trigger's family left out."""
        out = np.zeros(self.n, dtype=np.int64)
        for name, fam in self.families.items():
            if name != exclude:
                out += fam.agrees
        return out

    def confidence(self, exclude: str | None = None) -> np.ndarray:
        """Noisy-OR of the agreeing families' weights (see the module docstring)."""
        doubt = np.ones(self.n, dtype=np.float64)
        for name, fam in self.families.items():
            if name != exclude:
                doubt *= np.where(fam.agrees, 1.0 - (EVIDENCE_FLOOR + EVIDENCE_SPAN * fam.strength), 1.0)
        return np.clip(1.0 - doubt, 0.0, 1.0)

    def agreeing(self, i: int, exclude: str | None = None) -> list[str]:
        """The families agreeing at bar i (for explanations and tests)."""
        return [name for name, fam in self.families.items() if name != exclude and bool(fam.agrees[i])]


def _family(agrees: np.ndarray, strength: np.ndarray) -> Family:
    # NaN (warm-up) compares False and is no strength: a family without data never agrees.
    agrees = np.ascontiguousarray(agrees, dtype=np.bool_)
    return Family(agrees, _strength_nb(agrees, np.ascontiguousarray(strength, dtype=np.float64)))


def _strength_py(agrees: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The reference of `_strength_nb` (tests check they agree)."""
    return np.where(agrees, np.clip(np.nan_to_num(strength, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0), 0.0)


@nb.njit(cache=True, nogil=True)
def _strength_nb(agrees: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Strength clipped to [0, 1] where the family agrees (NaN → 0, +inf → 1), else 0: one pass."""
    out = np.zeros(agrees.shape[0])
    for i in range(agrees.shape[0]):
        if agrees[i]:
            s = strength[i]
            if np.isnan(s):
                s = 0.0
            out[i] = min(max(s, 0.0), 1.0)
    return out


@nb.njit(cache=True, nogil=True)
def _combine_nb(agrees: tuple, strengths: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`Evidence.confidence()` and `Evidence.count()` in one pass: the same products in the same
    family order (multiplying by 1.0 where a family does not agree is exact, so it is skipped)."""
    confidence = np.empty(n)
    count = np.zeros(n, dtype=np.int64)
    _combine_into(agrees, strengths, confidence, count, 0, n)
    return confidence, count


@nb.njit(cache=True, nogil=True)
def _combine_into(agrees: tuple, strengths: tuple, confidence: np.ndarray, count: np.ndarray, lo: int,
                  hi: int) -> None:
    """`_combine_nb` on bars [lo, hi): each bar on its own, so ranges can run on other threads."""
    for i in range(lo, hi):
        doubt = 1.0
        c = 0
        for f in range(len(agrees)):
            if agrees[f][i]:
                doubt *= 1.0 - (EVIDENCE_FLOOR + EVIDENCE_SPAN * strengths[f][i])
                c += 1
        confidence[i] = min(max(1.0 - doubt, 0.0), 1.0)
        count[i] = c


def combine(evidence: Evidence) -> tuple[np.ndarray, np.ndarray]:
    """(evidence.confidence(), evidence.count()) with no family excluded, compiled."""
    if not evidence.families:
        return evidence.confidence(), evidence.count()
    fams = list(evidence.families.values())
    agrees = tuple(np.ascontiguousarray(f.agrees, dtype=np.bool_) for f in fams)
    strengths = tuple(np.ascontiguousarray(f.strength, dtype=np.float64) for f in fams)
    confidence = np.empty(evidence.n)
    count = np.zeros(evidence.n, dtype=np.int64)
    # bars are independent: an idle worker of a portfolio backtest may take some (`split_range`)
    split_range(lambda lo, hi: _combine_into(agrees, strengths, confidence, count, lo, hi), evidence.n,
                work=evidence.n * len(fams))
    return confidence, count


def _sma_from_first_valid(x: np.ndarray, window: int) -> np.ndarray:
    """SMA of a series with a NaN warm-up (the running sum would otherwise stay NaN forever)."""
    out = np.full(x.shape[0], np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.size:
        k = int(valid[0])
        out[k:] = sma(x[k:], window)
    return out


def log_returns(close: np.ndarray) -> np.ndarray:
    """ln(close[i] / close[i-1]); NaN at bar 0."""
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] > 1:
        out[1:] = np.diff(np.log(close))
    return out


def realised_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Population std of the log returns over the trailing `window` bars."""
    return remember("realised_volatility", (close,), (window,), lambda: rolling_std(log_returns(close), window))


def trend_family(close: np.ndarray, window: int, sigma: np.ndarray) -> Family:
    close = np.ascontiguousarray(close, dtype=np.float64)
    ma = sma(close, window)
    agrees, idx, ratio = _trend_agrees_nb(close, ma, max(1, window // 10))
    # numpy's log (the compiled pass must not differ by an ulp), on the agreeing bars only: it is
    # computed element by element, so a subset gives the same values
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(ratio)
    strength = _trend_strength_nb(idx, log_ratio, np.ascontiguousarray(sigma, dtype=np.float64),
                                  float(np.sqrt(window)), close.shape[0])
    return Family(agrees, strength)


def trend_family_py(close: np.ndarray, window: int, sigma: np.ndarray) -> Family:
    """The numpy reference of `trend_family` (tests check they agree)."""
    ma = sma(close, window)
    lag = max(1, window // 10)
    earlier = np.full(close.shape[0], np.nan)
    earlier[lag:] = ma[:-lag]
    with np.errstate(invalid="ignore", divide="ignore"):
        agrees = (close > ma) & (ma > earlier)
        strength = np.log(close / ma) / (sigma * np.sqrt(window))
    return Family(np.asarray(agrees, dtype=np.bool_), _strength_py(agrees, strength))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _trend_agrees_nb(close: np.ndarray, ma: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """close above its SMA and the SMA above its value `lag` bars earlier (NaN: no); the bars
    where it is, and close / SMA there (one IEEE division each, as numpy's)."""
    n = close.shape[0]
    agrees = np.zeros(n, dtype=np.bool_)
    idx = np.empty(n, dtype=np.int64)
    ratio = np.empty(n)
    k = 0
    for i in range(lag, n):
        if close[i] > ma[i] and ma[i] > ma[i - lag]:
            agrees[i] = True
            idx[k] = i
            ratio[k] = close[i] / ma[i]
            k += 1
    return agrees, idx[:k], ratio[:k]


@nb.njit(cache=True, nogil=True, error_model="numpy")  # x / 0 is ±inf or NaN, as in numpy
def _trend_strength_nb(idx: np.ndarray, log_ratio: np.ndarray, sigma: np.ndarray, sqrt_window: float,
                       n: int) -> np.ndarray:
    """The clipped strength at the agreeing bars `idx` (0 elsewhere), as `_strength_py` would."""
    strength = np.zeros(n)
    for k in range(idx.shape[0]):
        i = idx[k]
        s = log_ratio[k] / (sigma[i] * sqrt_window)
        if np.isnan(s):
            s = 0.0
        strength[i] = min(max(s, 0.0), 1.0)
    return strength


def momentum_family(close: np.ndarray, window: int, rsi_window: int) -> Family:
    r = rsi(close, rsi_window)
    with np.errstate(invalid="ignore"):
        agrees = (roc(close, window) > 0.0) & (r > RSI_NEUTRAL)
    return _family(agrees, (r - RSI_NEUTRAL) / RSI_FULL)


def volume_family(volume: np.ndarray, window: int) -> Family:
    return Family(*_volume_nb(np.ascontiguousarray(volume, dtype=np.float64), sma(volume, window)))


def volume_family_py(volume: np.ndarray, window: int) -> Family:
    """The numpy reference of `volume_family` (tests check they agree)."""
    mean = sma(volume, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _family(volume > mean, volume / mean - 1.0)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _volume_nb(volume: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = volume.shape[0]
    agrees = np.zeros(n, dtype=np.bool_)
    strength = np.zeros(n)
    for i in range(n):
        if volume[i] > mean[i]:
            agrees[i] = True
            s = volume[i] / mean[i] - 1.0
            if np.isnan(s):
                s = 0.0
            strength[i] = min(max(s, 0.0), 1.0)
    return agrees, strength


def volatility_family(sigma: np.ndarray, baseline: int) -> Family:
    lo, hi = VOLATILITY_BAND
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sigma / _sma_from_first_valid(sigma, baseline)
        agrees = (ratio >= lo) & (ratio <= hi)
        strength = np.minimum((ratio - lo) / (1.0 - lo), (hi - ratio) / (hi - 1.0))
    return _family(agrees, strength)


@nb.njit(cache=True, nogil=True)
def _debounce(raw: np.ndarray, confirm: int) -> np.ndarray:
    """`nettrace_dagster.regimes._debounce`, compiled: a label changes after `confirm` bars agree."""
    out = raw.copy()
    n = raw.shape[0]
    if n == 0:
        return out
    current = raw[0]
    pending = raw[0]
    run = 0
    for i in range(n):
        label = raw[i]
        if label == current:
            run = 0
        elif label == pending:
            run += 1
            if run >= confirm:
                current = label
                run = 0
        else:
            pending = label
            run = 1
            if confirm <= 1:
                current = label
                run = 0
        out[i] = current
    return out


def regime_labels(close: np.ndarray, config: EvidenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(label index into regimes.LABELS per bar, fitted window return): the regimes asset's method."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        trend = rolling_trend(close, config.regime_window) if close.shape[0] else np.zeros(0)
        raw = np.where(trend > config.regime_bull, 0, np.where(trend < config.regime_bear, 1, 2)).astype(np.int8)
        return _debounce(raw, config.regime_confirm), trend

    return remember("regime_labels", (close,),
                    (config.regime_window, config.regime_bull, config.regime_bear, config.regime_confirm), compute)


def regime_family(close: np.ndarray, config: EvidenceConfig) -> Family:
    labels, trend = regime_labels(close, config)
    accepted = np.array([LABELS.index(label) for label in config.regime_accepts], dtype=np.int8)
    return _family(np.isin(labels, accepted), 0.5 + trend / REGIME_FULL)


def _arrays(candles: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(candles["close"].to_numpy(), dtype=np.float64),
            np.ascontiguousarray(candles["volume"].to_numpy(), dtype=np.float64))


def gather(candles: pl.DataFrame, config: EvidenceConfig | None = None,
           families: Iterable[str] = FAMILIES) -> Evidence:
    """The named families' verdicts on `candles` (columns `close` and `volume`)."""
    config = config or EvidenceConfig()
    wanted = list(families)
    unknown = sorted(set(wanted) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown evidence famil{'ies' if len(unknown) > 1 else 'y'} "
                         f"{', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    close, volume = _arrays(candles)
    c = config
    out: dict[str, Family] = {}
    # each family is memoized on its own inputs (inside `indicators.memoized()`): the windows it
    # reads, not the whole config, so strategies and trials sharing a window share the family
    for name in FAMILIES:
        if name not in wanted:
            continue
        if name == TREND:
            out[name] = remember("trend", (close,), (c.trend_window, c.volatility_window), lambda: trend_family(
                close, c.trend_window, realised_volatility(close, c.volatility_window)))
        elif name == MOMENTUM:
            out[name] = remember("momentum", (close,), (c.momentum_window, c.rsi_window),
                                 lambda: momentum_family(close, c.momentum_window, c.rsi_window))
        elif name == VOLUME:
            out[name] = remember("volume", (volume,), (c.volume_window,), lambda: volume_family(volume, c.volume_window))
        elif name == VOLATILITY:
            out[name] = remember("volatility", (close,), (c.volatility_window, c.volatility_baseline),
                                 lambda: volatility_family(realised_volatility(close, c.volatility_window),
                                                           c.volatility_baseline))
        else:
            out[name] = remember("regime", (close,), (c.regime_window, c.regime_bull, c.regime_bear, c.regime_confirm,
                                                      tuple(c.regime_accepts)), lambda: regime_family(close, c))
    return Evidence(out, close.shape[0])


def check_trigger_family(trigger_family: str | None) -> str | None:
    if trigger_family is not None and trigger_family not in FAMILIES:
        raise ValueError(f"trigger family {trigger_family!r} is not one of {', '.join(FAMILIES)} (or None)")
    return trigger_family


def confirm(candles: pl.DataFrame, trigger_family: str | None,
            config: EvidenceConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(confidence float64[n], confirmations int64[n]) at every bar, for a long entry whose
    trigger belongs to `trigger_family` (left out of the count; None: a trigger of no family).
    Only entry bars are read by the Rule 2 gate."""
    trigger_family = check_trigger_family(trigger_family)
    config = config or EvidenceConfig()
    evidence = gather(candles, config, [f for f in FAMILIES if f != trigger_family])
    # the combination, by the families' own results (memoized ones keep their identity)
    arrays = tuple(a for fam in evidence.families.values() for a in fam)
    return remember("confirm", arrays, (tuple(evidence.families),), lambda: combine(evidence))
