"""Import a user's candle file into the lake, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from nettrace_dagster.market.file_source import read_candle_file
from nettrace_dagster.market.lake import Lake, write_parquet_atomic
from nettrace_dagster.market.schema import CandleError, conform, infer_timeframe_seconds, require_valid
from nettrace_dagster.market.schema import seconds_to_timeframe as tf_name
from nettrace_dagster.market.sources import merge_candles
from nettrace_dagster.market.symbols import SymbolError, parse_symbol


@dataclass(frozen=True)
class ImportResult:
    symbol: str
    rows_in_file: int
    new_rows: int
    total_rows: int
    first: str
    last: str


def import_candles(path: Path, symbol: str, lake: Lake) -> ImportResult:
    """Validate `path` completely, then merge it into `candles[symbol]` with one atomic write.

    Any problem raises CandleError before anything is written, so a bad file never damages
    what is stored. Bars already stored are final; the file only adds newer or missing ones, at
    the stored series' timeframe (hourly bars merged into a 1-minute series would look like a
    1-minute series with 59 of every 60 bars missing).
    """
    symbol = _symbol(symbol)
    incoming = read_candle_file(path)
    stored = lake.read_candles(symbol) if lake.exists("candles", symbol) else None
    if stored is not None:
        have, new = infer_timeframe_seconds(stored), infer_timeframe_seconds(incoming)
        if have and new and have != new:
            raise CandleError(f"{Path(path).name} holds {tf_name(new)} bars, but {symbol} is stored as "
                              f"{tf_name(have)} bars: resample the file to {tf_name(have)} first")
    merged = require_valid(merge_candles(stored, conform(incoming)).sort("timestamp"), f"{symbol} after merge")
    new_rows = merged.height - (stored.height if stored is not None else 0)
    if new_rows:
        write_parquet_atomic(merged, lake.path("candles", symbol), compression="zstd")
    return ImportResult(symbol, incoming.height, new_rows, merged.height,
                        str(merged["timestamp"].min()), str(merged["timestamp"].max()))


def _symbol(symbol: str) -> str:
    try:
        return parse_symbol(symbol, "symbol")
    except SymbolError as exc:
        raise CandleError(str(exc)) from None


def stored_symbols(lake: Lake) -> list[str]:
    return lake.partitions("candles")


def load_candles_arg(data: str, lake: Lake) -> tuple[pl.DataFrame, str]:
    """`--data` as a candle file, or else as a symbol held in the lake; with where it came from."""
    path = Path(data)
    if path.is_dir():
        raise CandleError(f"--data {data}: is a directory, expected a .csv or .parquet candle file")
    if path.suffix.lower() in (".csv", ".parquet", ".txt") or path.exists():
        return read_candle_file(path), str(path)
    symbol = _symbol(data)
    if lake.exists("candles", symbol):
        return require_valid(lake.read_candles(symbol), symbol), f"lake:{symbol}"
    held = ", ".join(stored_symbols(lake)) or "none"
    raise CandleError(f"--data {data!r}: no such file, and no such symbol in the lake (held: {held})")
