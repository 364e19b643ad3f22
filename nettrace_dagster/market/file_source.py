"""Import candles from CSV or Parquet files a user brings.

Accepted: a header with `timestamp,open,high,low,close,volume` (any order, any case, extra
columns ignored), or Binance public-data kline CSVs (no header, 12 columns, open time first).
Timestamps: ISO 8601 (naive means UTC), or epoch seconds / milliseconds / microseconds /
nanoseconds, told apart by magnitude, between 1900 and 2300. Any regular timeframe from 1 minute
to 1 day. Every problem is a `CandleError` with one line naming it; nothing is written by this
module.
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
# Timestamps outside these (epoch ms) are typos, not market data — and past Python's year 9999
# polars panics (a Rust crash, not an exception) as soon as one is shown.
MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS = -2_208_988_800_000, 10_413_792_000_000  # 1900-01-01, 2300-01-01
_TS_RANGE = "1900 … 2300"

try:
    from polars.exceptions import PanicException
except ImportError:  # pragma: no cover - older polars: pyo3's own class
    PanicException = BaseException  # type: ignore[assignment,misc]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise CandleError(f"{path.name}: cannot read ({exc.strerror})") from None
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


def _epoch_to_ms(values: pl.Series, raw: pl.Series, name: str) -> pl.Series:
    values = values.cast(pl.Float64)
    finite = values.filter(values.is_finite())
    biggest = float(finite.abs().max() or 0) if finite.len() else 0.0
    factor = next(f for limit, f in _EPOCH_UNITS if biggest < limit)
    ms = values * factor
    return _in_range(ms, raw, name).round(0).cast(pl.Int64)


def _in_range(ms: pl.Series, raw: pl.Series, name: str) -> pl.Series:
    """`ms` (epoch milliseconds, float), or CandleError naming the first timestamp out of range."""
    bad = (~ms.is_finite()) | (ms < MIN_TIMESTAMP_MS) | (ms >= MAX_TIMESTAMP_MS)
    if bad.any():
        idx = int(bad.arg_max())
        raise CandleError(f"{name}: timestamp {raw[idx]!r} at row {idx + 1} is outside {_TS_RANGE}")
    return ms


def _timestamps(df: pl.DataFrame, name: str) -> pl.DataFrame:
    ts = df["timestamp"]
    if ts.null_count():
        raise CandleError(f"{name}: missing timestamp at row {int(ts.is_null().arg_max()) + 1}")
    if isinstance(ts.dtype, pl.Datetime):
        parsed = ts if ts.dtype.time_zone else ts.dt.replace_time_zone("UTC")
        _in_range(parsed.dt.epoch("ms").cast(pl.Float64), ts.dt.epoch("ms"), name)
    elif ts.dtype.is_numeric():
        parsed = _epoch_to_ms(ts, ts, name).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    else:
        text = ts.cast(pl.String).str.strip_chars()
        as_num = text.cast(pl.Float64, strict=False)
        if as_num.null_count() == 0:
            parsed = _epoch_to_ms(as_num, text, name).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
        else:
            parsed = _parse_iso(text, name)
    return df.with_columns(parsed.cast(TIMESTAMP_DTYPE).alias("timestamp"))


def _parse_iso(text: pl.Series, name: str) -> pl.Series:
    seconds: list[float] = []
    for i, value in enumerate(text.to_list()):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            seconds.append((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp())
        except (ValueError, OverflowError):
            raise CandleError(f"{name}: timestamp {value!r} at row {i + 1} is not ISO 8601 or epoch") from None
    # Seconds are the unit here whatever their size: a year-1 date is out of range, not "ns".
    ms = pl.Series(seconds, dtype=pl.Float64) * 1000
    return _in_range(ms, text, name).round(0).cast(pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def read_candle_file(path: Path | str) -> pl.DataFrame:
    """Read, normalise and validate one candle file. Raises CandleError; gaps are allowed."""
    path = Path(path)
    if not path.exists():
        raise CandleError(f"{path}: no such file")
    if path.is_dir():
        raise CandleError(f"{path}: is a folder, not a candle file")
    if not path.is_file():
        raise CandleError(f"{path}: not a regular file")  # a FIFO or a device would block or never end
    try:
        return _read_candle_file(path)
    except PanicException as exc:  # polars crashed on something not checked above: still one line
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "polars panicked")
        raise CandleError(f"{path.name}: cannot be read ({first})") from None


def _read_candle_file(path: Path) -> pl.DataFrame:
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
