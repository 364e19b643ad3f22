"""Candle quality checks, judged in one place for the asset checks and the CLI alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from nettrace_dagster.market.schema import (
    finite_rows,
    gap_report,
    nan_problems,
    ordering_problems,
    price_problems,
)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


CHECK_NAMES = ("sorted_unique", "gaps", "ohlc_sane", "no_nan")
CHECK_DESCRIPTIONS = {  # what each blocking check guarantees downstream (shown in the UI)
    "sorted_unique": "Bar timestamps strictly increase: no duplicate or out-of-order bar.",
    "gaps": "Missing bars stay within NETTRACE_GAP_TOLERANCE of the span.",
    "ohlc_sane": "Every bar has low <= open, close <= high and positive prices.",
    "no_nan": "No bar has a missing (NaN or null) value.",
}


def inspect_candles(df: pl.DataFrame, timeframe_s: int, gap_tolerance: float) -> list[CheckOutcome]:
    """One outcome per check in CHECK_NAMES, each judged by its own function so that one check's
    failure never decides another's result. A failed outcome's description says why.

    `ohlc_sane` judges the bars whose values are all finite (a NaN bar is `no_nan`'s failure);
    its description and `bars_not_judged` metadata say how many bars it left out."""
    if df.height == 0:
        return [CheckOutcome(name, False, "no candles stored") for name in CHECK_NAMES]
    order = ordering_problems(df)
    nan = nan_problems(df)
    insane = price_problems(df)
    judged = int(finite_rows(df).sum())
    not_judged = df.height - judged
    ohlc_scope = f"{judged} bar(s) judged" + (f", {not_judged} with NaN/null/inf left to no_nan" if not_judged else "")
    missing, share = gap_report(df, timeframe_s) if not order else (0, 0.0)
    return [
        CheckOutcome("sorted_unique", not order, "; ".join(order) or "timestamps sorted and unique"),
        CheckOutcome(
            "gaps", share <= gap_tolerance,
            f"{missing} missing bar(s) = {share:.2%} of the span (tolerance {gap_tolerance:.2%})",
            {"missing_bars": missing, "missing_share": round(share, 6), "timeframe_s": timeframe_s}),
        CheckOutcome("ohlc_sane", not insane,
                     "; ".join([*insane, ohlc_scope]) if insane
                     else f"prices positive, low <= open,close <= high ({ohlc_scope})",
                     {"bars_not_judged": not_judged}),
        CheckOutcome("no_nan", not nan, "; ".join(nan) or "no NaN, null or infinite values"),
    ]
