"""Markets and strategies with a known answer, for the optimizer's tests.

- `planted_market`: a driftless random walk in which, every `period` bars, the bars after phase
  `phase` rise by `lift` in total: a strategy entering at that phase and holding `hold` bars has a
  real edge; at any other phase it has none.
- `PhaseStrategy`: enters when bar % period == phase and exits `hold` bars later (its parameters
  are what the study must find).
- `RandomStrategy`: entries and exits drawn from its `seed` parameter: many random strategies on a
  driftless walk, the best of which is a deliberate overfit.
Both strategies pass Rule 2 on every entry (confidence 1, three confirmations): what is tested is
the optimizer, not the evidence families.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.strategies.base import Signals, Strategy

PERIOD = 20
PLANTED_PHASE = 7
PLANTED_HOLD = 5


def candles_from_log_close(log_close: np.ndarray, seed: int = 0, start: dt.datetime | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1000)
    n = log_close.shape[0]
    close = np.exp(log_close)
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0.0, 2e-4, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    start = start or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    ts = np.datetime64(start.replace(tzinfo=None), "ms") + np.arange(n, dtype=np.int64) * np.timedelta64(60_000, "ms")
    return pl.DataFrame({"timestamp": pl.Series(ts).dt.replace_time_zone("UTC"), "open": open_, "high": high,
                         "low": low, "close": close, "volume": rng.lognormal(3.0, 0.3, n)})


def random_walk(n: int, seed: int, vol: float = 3e-3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return candles_from_log_close(np.log(100.0) + np.cumsum(rng.normal(0.0, vol, n)), seed)


def planted_market(n: int, seed: int, lift: float = 0.012, vol: float = 1e-3, phase: int = PLANTED_PHASE,
                   period: int = PERIOD, hold: int = PLANTED_HOLD) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, vol, n)
    idx = np.arange(n)
    # a signal at bar i fills at bar i+1's open (= bar i's close): bars i+1 … i+hold carry the lift
    in_lift = ((idx - phase - 1) % period) < hold
    steps[in_lift] += lift / hold
    steps[~in_lift] -= lift * hold / (period - hold) / hold  # keep the walk driftless overall
    return candles_from_log_close(np.log(100.0) + np.cumsum(steps), seed)


class PhaseStrategy(Strategy):
    name = "phase"
    description = "enter at one phase of a fixed cycle, hold a few bars"
    default_params = {"phase": 0, "hold": 3}
    param_space = {"phase": ("int", 0, PERIOD - 1), "hold": ("int", 1, 9)}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        n = candles.height
        idx = np.arange(n)
        entries = idx % PERIOD == int(params["phase"])
        exits = idx % PERIOD == (int(params["phase"]) + int(params["hold"])) % PERIOD
        return Signals(entries, exits & ~entries, np.ones(n), np.full(n, 3, dtype=np.int64))


class RandomStrategy(Strategy):
    name = "coin"
    description = "random entries and exits, drawn from its seed"
    default_params = {"seed": 0}
    param_space = {"seed": ("int", 0, 1_000_000)}

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        n = candles.height
        rng = np.random.default_rng(int(params["seed"]))
        entries = rng.random(n) < 0.004
        exits = (rng.random(n) < 0.02) & ~entries
        return Signals(entries, exits, np.ones(n), np.full(n, 3, dtype=np.int64))
