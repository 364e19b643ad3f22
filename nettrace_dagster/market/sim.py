"""A seeded, regime-switching market simulator: the offline default source.

Prices alternate between BULL (positive drift), BEAR (negative drift) and SIDEWAYS (mean
reversion around a level) in segments of one to three days of 1-minute bars, and every bar
records the regime that generated it (`true_regime`), so regime detection can be scored against
the truth. The whole history of a symbol is a pure function of (seed, symbol): same seed, same
bars, on any machine — the generator is numpy's PCG64, seeded from a CRC of the symbol.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from nettrace_dagster.market.schema import conform

SIM_START = datetime(2026, 1, 1, tzinfo=UTC)
REGIMES = ("BULL", "BEAR", "SIDEWAYS")
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}


@dataclass(frozen=True)
class SimParams:
    """Per-bar dynamics. Drift and volatility are per 1-minute bar (log returns)."""

    drift: float = 1.0e-4  # ±0.01 % a bar in trends: ~3 % over the default 300-bar regime window
    volatility: float = 7.0e-4
    sideways_reversion: float = 0.02  # pull per bar back to the sideways level
    min_segment: int = 1440
    max_segment: int = 4320


def _rng(seed: int, symbol: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(symbol.encode())])


def _regime_path(rng: np.random.Generator, bars: int, p: SimParams) -> np.ndarray:
    """Regime index per bar. Segments cycle through a shuffled order so every regime appears."""
    out = np.empty(bars, dtype=np.int8)
    i, order, previous = 0, [], -1
    while i < bars:
        if not order:
            order = list(rng.permutation(3))
            if order[0] == previous:  # never two segments of one regime in a row
                order.append(order.pop(0))
        regime = order.pop(0)
        length = int(rng.integers(p.min_segment, p.max_segment + 1))
        out[i:i + length] = regime
        previous, i = regime, i + length
    return out


def simulate(symbol: str, bars: int, seed: int = 7, timeframe_s: int = 60,
             params: SimParams | None = None) -> pl.DataFrame:
    """`bars` candles of `symbol` from SIM_START, in the canonical candle schema."""
    p = params or SimParams()
    rng = _rng(seed, symbol)
    regimes = _regime_path(rng, bars, p)
    shocks = rng.standard_normal(bars) * p.volatility
    log_close = np.empty(bars)
    level = np.log(START_PRICES.get(symbol.split("-")[0], 100.0))
    x, anchor = level, level
    for t in range(bars):  # sequential by nature (mean reversion needs the last price)
        r = regimes[t]
        if t == 0 or r != regimes[t - 1]:
            anchor = x
        if r == 0:
            x += p.drift + shocks[t]
        elif r == 1:
            x += -p.drift + shocks[t]
        else:
            x += p.sideways_reversion * (anchor - x) + shocks[t]
        log_close[t] = x
    close = np.exp(log_close)
    open_ = np.concatenate([[np.exp(level)], close[:-1]])
    wick = np.abs(rng.standard_normal((2, bars))) * p.volatility * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(mean=3.0, sigma=0.5, size=bars)
    start_ms = int(SIM_START.timestamp() * 1000)
    ts = start_ms + np.arange(bars, dtype=np.int64) * timeframe_s * 1000
    df = pl.DataFrame({
        "timestamp": pl.Series(ts).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        "open": open_, "high": high, "low": low, "close": close, "volume": volume,
        "true_regime": np.array(REGIMES)[regimes],
    })
    return conform(df)


class SimSource:
    """The simulated exchange: a fixed, deterministic history per symbol."""

    def __init__(self, seed: int = 7, bars: int = 10_080, timeframe_s: int = 60) -> None:
        self.seed, self.bars, self.timeframe_s = seed, bars, timeframe_s

    def fetch(self, symbol: str, since: datetime | None) -> pl.DataFrame:
        df = simulate(symbol, self.bars, self.seed, self.timeframe_s)
        return df if since is None else df.filter(pl.col("timestamp") > since)
