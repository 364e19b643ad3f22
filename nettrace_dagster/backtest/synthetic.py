"""Seeded synthetic candles for benchmarks, cross-checks and tests (not a market model: the
regime-switching simulator lives in the market package)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl


def synthetic_candles(n: int, seed: int = 42, *, timeframe_s: int = 60, vol: float = 0.0015,
                      jump_prob: float = 0.002, start: dt.datetime | None = None) -> pl.DataFrame:
    """`n` bars of a seeded log random walk with occasional opening gaps (so stops can be gapped
    through), in the candle schema."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(0.0, vol / 20, n)
    ret = rng.normal(0.0, vol, n) + drift
    gaps = np.where(rng.random(n) < jump_prob, rng.normal(0.0, vol * 8, n), rng.normal(0.0, vol / 10, n))
    log_close = np.log(100.0) + np.cumsum(ret + gaps)
    close = np.exp(log_close)
    prev_close = np.concatenate(([100.0], close[:-1]))
    open_ = prev_close * np.exp(gaps)
    wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    start = start or dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ts = (np.datetime64(start.replace(tzinfo=None), "ms")
          + np.arange(n, dtype=np.int64) * np.timedelta64(timeframe_s * 1000, "ms"))
    return pl.DataFrame({
        "timestamp": pl.Series(ts).dt.replace_time_zone("UTC"),
        "open": open_, "high": high, "low": low, "close": close,
        "volume": rng.lognormal(3.0, 0.5, n),
    })
