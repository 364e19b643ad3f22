"""Import candles from CSV or Parquet files a user brings.

Accepted: a header with `timestamp,open,high,low,close,volume` (any order, any case, extra
columns ignored), or Binance public-data kline CSVs (no header, 12 columns, open time first).
Timestamps: ISO 8601 (naive means UTC), or epoch seconds / milliseconds / microseconds /
nanoseconds, told apart by magnitude. Any regular timeframe from 1 minute to 1 day.
Every problem is a `CandleError` with one line naming it; nothing is written by this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from nettrace_dagster.market.schema import (
    OHLCV,
    REQUIRED,
    TIMESTAMP_DTYPE,
    CandleError,
    conform,
    infer_timeframe_seconds,
    require_valid,
)

BINANCE_KLINE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "close_time",
                         "quote_volume", "trades", "taker_base", "taker_quote", "ignore")
TIMESTAMP_ALIASES = ("timestamp", "open_time", "time", "date", "datetime")
MIN_TIMEFRAME_S, MAX_TIMEFRAME_S = 60, 86_400
# Epoch magnitude → unit: below 1e11 seconds (until year 5138), 1e14 ms, 1e17 µs, else ns.
_EPOCH_UNITS = ((1e11, 1000), (1e14, 1), (1e17, 1e-3), (float("inf"), 1e-6))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: Path) -> pl.DataFrame:
    text = path.read_text(errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise CandleError(f"{path.name}: empty file")
    fields = [f.strip() for f in first.split(",")]
    try:
        if _is_number(fields[0]):  # headerless: Binance kline layout
            if len(fields) < 6:
                raise CandleError(f"{path.name}: headerless CSV needs at least 6 columns, found {len(fields)}")
            names = list(BINANCE_KLINE_COLUMNS[:len(fields)]) + [f"extra_{i}" for i in range(len(fields) - 12)]
            return pl.read_csv(path, has_header=False, new_columns=names, infer_schema=False)
        return pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise CandleError(f"{path.name}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _normalise_names(df: pl.DataFrame, name: str) -> pl.DataFrame:
    df = df.rename({c: c.strip().lower() for c in df.columns})
    if "timestamp" not in df.columns:
        alias = next((a for a in TIMESTAMP_ALIASES if a in df.columns), None)
        if alias:
            df = df.rename({alias: "timestamp"})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CandleError(f"{name}: missing column(s): {', '.join(missing)}")
    return df


def _numeric(df: pl.DataFrame, name: str) -> pl.DataFrame:
    for col in OHLCV:
        if df[col].dtype.is_numeric():
            continue
        raw = df[col].cast(pl.String).str.strip_chars()
        cast = raw.cast(pl.Float64, strict=False)
        bad = cast.is_null() & raw.is_not_null() & (raw != "")
        if bad.any():
            idx = int(bad.arg_max())
            raise CandleError(f"{name}: non-numeric value {raw[idx]!r} in column {col} at row {idx + 1}")
        df = df.with_columns(cast.alias(col))
    return df


def _epoch_to_ms(values: pl.Series) -> pl.Series:
    biggest = float(values.abs().max() or 0)
    factor = next(f for limit, f in _EPOCH_UNITS if biggest < limit)
    return (values.cast(pl.Float64) * factor).round(0).cast(pl.Int64)


def _timestamps(df: pl.DataFrame, name: str) -> pl.DataFrame:
    ts = df["timestamp"]
    if ts.null_count():
        raise CandleError(f"{name}: missing timestamp at row {int(ts.is_null().arg_max()) + 1}")
    if isinstance(ts.dtype, pl.Datetime):
        parsed = ts if ts.dtype.time_zone else ts.dt.replace_time_zone("UTC")
    elif ts.dtype.is_numeric():
        parsed = _epoch_to_ms(ts).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    else:
        text = ts.cast(pl.String).str.strip_chars()
        as_num = text.cast(pl.Float64, strict=False)
        if as_num.null_count() == 0:
            parsed = _epoch_to_ms(as_num).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
        else:
            parsed = _parse_iso(text, name)
    return df.with_columns(parsed.cast(TIMESTAMP_DTYPE).alias("timestamp"))


def _parse_iso(text: pl.Series, name: str) -> pl.Series:
    seconds: list[float] = []
    for i, value in enumerate(text.to_list()):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CandleError(f"{name}: timestamp {value!r} at row {i + 1} is not ISO 8601 or epoch") from None
        seconds.append((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp())
    return _epoch_to_ms(pl.Series(seconds)).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def read_candle_file(path: Path | str) -> pl.DataFrame:
    """Read, normalise and validate one candle file. Raises CandleError; gaps are allowed."""
    path = Path(path)
    if not path.exists():
        raise CandleError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            df = pl.read_parquet(path)
        except Exception as exc:  # polars/arrow raise several types for a bad file
            raise CandleError(f"{path.name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    elif suffix in (".csv", ".txt"):
        df = _read_csv(path)
    else:
        raise CandleError(f"{path.name}: expected a .csv or .parquet file")
    if df.height == 0:
        raise CandleError(f"{path.name}: no rows")
    df = _normalise_names(df, path.name)
    df = _timestamps(_numeric(df, path.name), path.name)
    df = require_valid(conform(df), path.name)
    tf = infer_timeframe_seconds(df)
    if tf is not None and not MIN_TIMEFRAME_S <= tf <= MAX_TIMEFRAME_S:
        raise CandleError(f"{path.name}: bar spacing {tf} s is outside 1 minute … 1 day")
    return df


class FileSource:
    """Candles from `<import_dir>/<SYMBOL>.parquet` or `.csv`, newer than what is stored."""

    def __init__(self, import_dir: Path) -> None:
        self.import_dir = Path(import_dir)

    def locate(self, symbol: str) -> Path:
        for suffix in (".parquet", ".csv"):
            candidate = self.import_dir / f"{symbol}{suffix}"
            if candidate.exists():
                return candidate
        raise CandleError(f"no {symbol}.csv or {symbol}.parquet in {self.import_dir}")

    def fetch(self, symbol: str, since: datetime | None) -> pl.DataFrame:
        df = read_candle_file(self.locate(symbol))
        return df if since is None else df.filter(pl.col("timestamp") > since)
