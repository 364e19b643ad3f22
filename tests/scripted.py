"""A scripted market for trading tests: hand-made prices per symbol and a strategy that enters and
exits on chosen bars, so a test knows exactly which intents a tick makes and at what prices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.strategies.base import Signals

START = datetime(2026, 1, 1, tzinfo=UTC)


def bars(symbol: str, closes: list[float], start: datetime = START) -> pl.DataFrame:
    """One-minute bars closing at `closes` (open = previous close), tagged with their symbol."""
    c = np.asarray(closes, dtype=float)
    o = np.concatenate([[c[0]], c[:-1]])
    ts = [start.timestamp() + 60 * i for i in range(len(c))]
    return pl.DataFrame({
        "timestamp": pl.Series([datetime.fromtimestamp(t, UTC) for t in ts]).dt.cast_time_unit("ms"),
        "open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c,
        "volume": np.ones(len(c)), "symbol": [symbol] * len(c),
    })


class Script:
    """The strategy: `entries[symbol]` / `exits[symbol]` are bar indices; entries carry a
    confidence of 0.9 with 3 confirmations (they pass Rule 2's gate)."""

    def __init__(self, entries: dict[str, set[int]], exits: dict[str, set[int]] | None = None) -> None:
        self.entries, self.exits = entries, exits or {}

    def run(self, candles: pl.DataFrame, params: dict[str, Any] | None = None) -> Signals:
        symbol = candles["symbol"][0]
        sig = Signals.empty(candles.height)
        for i in (i for i in self.entries.get(symbol, ()) if i < candles.height):  # bars not arrived yet
            sig.entries[i], sig.confidence[i], sig.confirmations[i] = True, 0.9, 3
        for i in (i for i in self.exits.get(symbol, ()) if i < candles.height):
            sig.exits[i] = True
        return sig


def install(monkeypatch: Any, script: Script) -> None:
    """Make the trader run `script` for every strategy name."""
    import nettrace_dagster.trading.trader as trader_module

    monkeypatch.setattr(trader_module, "get_strategy", lambda name: script)
