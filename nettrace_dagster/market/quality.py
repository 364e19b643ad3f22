"""Candle quality checks, judged in one place for the asset checks and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from nettrace_dagster.market.schema import gap_report, ordering_problems, value_problems


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


CHECK_NAMES = ("sorted_unique", "gaps", "ohlc_sane", "no_nan")


def inspect_candles(df: pl.DataFrame, timeframe_s: int, gap_tolerance: float) -> list[CheckOutcome]:
    """One outcome per check in CHECK_NAMES. A failed outcome's description says why."""
    order = ordering_problems(df) if df.height else []
    values = value_problems(df) if df.height else []
    nan = [p for p in values if "NaN" in p]
    insane = [p for p in values if "NaN" not in p]
    missing, share = gap_report(df, timeframe_s) if not order else (0, 0.0)
    outcomes = [
        CheckOutcome("sorted_unique", not order, "; ".join(order) or "timestamps sorted and unique"),
        CheckOutcome(
            "gaps", share <= gap_tolerance,
            f"{missing} missing bar(s) = {share:.2%} of the span (tolerance {gap_tolerance:.2%})",
            {"missing_bars": missing, "missing_share": round(share, 6), "timeframe_s": timeframe_s}),
        CheckOutcome("ohlc_sane", not insane, "; ".join(insane) or "prices positive, low <= open,close <= high"),
        CheckOutcome("no_nan", not nan, "; ".join(nan) or "no NaN, null or infinite values"),
    ]
    if df.height == 0:
        outcomes = [CheckOutcome(o.name, False, "no candles stored", o.metadata) for o in outcomes]
    return outcomes
