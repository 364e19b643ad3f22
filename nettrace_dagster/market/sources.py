"""The one interface every candle source implements, and the factory that picks one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from nettrace_dagster.market.file_source import FileSource
from nettrace_dagster.market.schema import timeframe_seconds
from nettrace_dagster.market.sim import SimSource

SOURCES = ("sim", "ccxt", "file")


class CandleSource(Protocol):
    def fetch(self, symbol: str, since: datetime | None) -> pl.DataFrame:
        """Closed bars strictly newer than `since`, in the canonical schema, sorted, unique."""
        ...


def make_source(kind: str, *, timeframe: str = "1m", sim_seed: int = 7, sim_bars: int = 10_080,
                sim_speed: float | None = None, clock: Callable[[], datetime] | None = None,
                import_dir: Path = Path("import"), ccxt_exchange: str = "binance",
                ccxt_history_days: int = 7, ccxt_max_retries: int = 5, ccxt_base_url: str | None = None,
                progress=None, api_budget=None) -> CandleSource:
    if kind == "sim":
        if sim_speed is None:  # not passed in: NETTRACE_SIM_SPEED
            from nettrace_dagster.settings import load_settings

            sim_speed = load_settings().nettrace_sim_speed
        return SimSource(seed=sim_seed, bars=sim_bars, timeframe_s=timeframe_seconds(timeframe),
                         speed=sim_speed, clock=clock)
    if kind == "file":
        return FileSource(import_dir)
    if kind == "ccxt":
        from nettrace_dagster.market.ccxt_source import CcxtSource, make_exchange

        exchange = make_exchange(ccxt_exchange, base_url=ccxt_base_url) if ccxt_base_url else None
        return CcxtSource(ccxt_exchange, timeframe=timeframe, history_days=ccxt_history_days,
                          max_retries=ccxt_max_retries, exchange=exchange, progress=progress,
                          api_budget=api_budget)
    raise ValueError(f"unknown market source {kind!r}; expected one of {', '.join(SOURCES)}")


def merge_candles(stored: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """Append `new` bars to `stored`. A bar already stored is final and is kept as it was.

    The new batch is not reordered or deduplicated here: if a source sends unsorted or repeated
    bars, the blocking checks must see that and stop the run, not have it silently papered over.
    """
    if stored is None or stored.height == 0:
        return new
    fresh = new.filter(~pl.col("timestamp").is_in(stored["timestamp"].implode()))
    return pl.concat([stored, fresh], how="vertical")
