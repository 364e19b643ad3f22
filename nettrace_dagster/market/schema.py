"""The candle schema and the rules a candle frame must obey — one place for both.

Every source (sim, ccxt, file) returns frames in this schema; the asset checks, the file import,
the backtest CLI and the trader all validate with `candle_problems`, so "valid candles" means one
thing everywhere.
"""

from __future__ import annotations

import re

import polars as pl

OHLCV = ("open", "high", "low", "close", "volume")
REQUIRED = ("timestamp", *OHLCV)
TIMESTAMP_DTYPE = pl.Datetime("ms", "UTC")

# `true_regime` is only known for simulated data; it is null for real markets.
CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": TIMESTAMP_DTYPE,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "true_regime": pl.String(),
}


class CandleError(ValueError):
    """Candles that cannot be used; the message is one line naming the problem."""


class MarketDataError(RuntimeError):
    """A source could not deliver candles (exchange down, retries exhausted); one line."""


_TF = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def timeframe_seconds(timeframe: str) -> int:
    """'1m' → 60, '4h' → 14400, '1d' → 86400."""
    match = _TF.match(timeframe.strip())
    if not match:
        raise CandleError(f"timeframe {timeframe!r} is not like 1m, 5m, 1h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def seconds_to_timeframe(seconds: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Cast a frame with the required columns to the canonical schema and column order."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CandleError(f"missing column(s): {', '.join(missing)}")
    if "true_regime" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String()).alias("true_regime"))
    return df.select([pl.col(c).cast(t) for c, t in CANDLE_SCHEMA.items()])


def infer_timeframe_seconds(df: pl.DataFrame) -> int | None:
    """The most common spacing between bars, or None with fewer than two bars."""
    if df.height < 2:
        return None
    diffs = df["timestamp"].diff().drop_nulls().dt.total_seconds()
    diffs = diffs.filter(diffs > 0)
    if diffs.len() == 0:
        return None
    return int(diffs.mode().min())


def gap_report(df: pl.DataFrame, timeframe_s: int) -> tuple[int, float]:
    """(missing bars, missing share of the span) against a regular timeframe."""
    if df.height < 2:
        return 0, 0.0
    first, last = df["timestamp"].min(), df["timestamp"].max()
    expected = int((last - first).total_seconds() // timeframe_s) + 1
    missing = max(expected - df["timestamp"].n_unique(), 0)
    return missing, missing / expected


def ordering_problems(df: pl.DataFrame) -> list[str]:
    problems: list[str] = []
    ts = df["timestamp"]
    if ts.null_count():
        problems.append(f"{ts.null_count()} null timestamp(s)")
        return problems
    dup = df.height - ts.n_unique()
    if dup:
        problems.append(f"{dup} duplicate timestamp(s), first at {_first(df, ts.is_duplicated())}")
    if not ts.is_sorted():
        back = ts.diff().dt.total_milliseconds() < 0
        if back.any():
            problems.append(f"timestamps not sorted: goes back in time at {_first(df, back.fill_null(False))}")
    return problems


def finite_rows(df: pl.DataFrame) -> pl.Series:
    """True where every OHLCV value is a number (not NaN, null or infinite)."""
    ok = pl.Series("finite", [True] * df.height, dtype=pl.Boolean())
    for col in OHLCV:
        ok = ok & df[col].is_finite().fill_null(False)
    return ok


def nan_problems(df: pl.DataFrame) -> list[str]:
    """NaN, null or infinite OHLCV values, one line per column."""
    problems: list[str] = []
    for col in OHLCV:
        bad = ~df[col].is_finite().fill_null(False)
        if bad.any():
            problems.append(f"{int(bad.sum())} NaN/null/inf value(s) in {col}, first at {_first(df, bad)}")
    return problems


def price_problems(df: pl.DataFrame) -> list[str]:
    """Positive prices, non-negative volume and low <= open,close <= high, judged on the rows whose
    values are all finite: a NaN row cannot be compared, and is `nan_problems`' to report — judging
    the rest means one bad value does not hide a broken bar elsewhere. With no finite row at all
    there is nothing to judge, which is reported as a problem rather than passed."""
    judged = finite_rows(df)
    if df.height and not judged.any():
        return ["no bar with finite values to judge"]
    problems: list[str] = []
    nonpos = judged & ((df["open"] <= 0) | (df["high"] <= 0) | (df["low"] <= 0) | (df["close"] <= 0))
    if nonpos.any():
        problems.append(f"{int(nonpos.sum())} bar(s) with non-positive price, first at {_first(df, nonpos)}")
    negative_volume = judged & (df["volume"] < 0)
    if negative_volume.any():
        problems.append(f"negative volume at {_first(df, negative_volume)}")
    low_bad = (df["low"] > df["open"]) | (df["low"] > df["close"])
    high_bad = (df["high"] < df["open"]) | (df["high"] < df["close"])
    insane = judged & (low_bad | high_bad)
    if insane.any():
        problems.append(f"{int(insane.sum())} bar(s) break low <= open,close <= high, first at {_first(df, insane)}")
    return problems


def value_problems(df: pl.DataFrame) -> list[str]:
    """Every value problem: non-finite values first, then price sanity of the finite rows."""
    return nan_problems(df) + price_problems(df)


def candle_problems(df: pl.DataFrame) -> list[str]:
    """Everything wrong with a candle frame (empty list: usable). Gaps are judged separately."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    if df.height == 0:
        return ["no rows"]
    return ordering_problems(df) + value_problems(df)


def require_valid(df: pl.DataFrame, what: str = "candles") -> pl.DataFrame:
    """Return `df` conformed, or raise CandleError with the first problem."""
    problems = candle_problems(df)
    if problems:
        raise CandleError(f"{what}: {problems[0]}")
    return conform(df)


def _first(df: pl.DataFrame, mask: pl.Series) -> str:
    idx = int(mask.arg_max())  # first True
    return f"row {idx + 1} ({df['timestamp'][idx]})"
