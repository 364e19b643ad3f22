"""A process that keeps trading on paper (orders, fills, audit records) and rewriting a lake file,
for tests that back up or break the home while it writes. Run: python -m tests.ops_writer HOME SECONDS [LEDGER_URL].
It prints "ready" after three round trips, keeps going SECONDS more, then prints the number of round trips."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import polars as pl

from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.market.lake import write_parquet_atomic


def main(home: Path, seconds: float, url: str | None = None) -> int:
    ledger = Ledger(url or f"sqlite:///{home / 'ledger.db'}", "NORMAL")
    engine = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=home / "audit")
    trips, deadline = 0, None  # `seconds` of writing once ready (a slow machine still gets there)
    while deadline is None or time.monotonic() < deadline:
        price = 100.0 + trips * 0.01  # rising: every round trip wins, so no rule stops the loop
        engine.submit(Intent("w", "BTC-USDT", "entry", price, f"t{trips}", 0.9, 3))
        engine.submit(Intent("w", "BTC-USDT", "exit", price * 1.01, f"t{trips}"))
        write_parquet_atomic(pl.DataFrame({"trip": list(range(trips + 1))}), home / "lake" / "writer" / "trips.parquet")
        trips += 1
        if trips == 3:
            print("ready", flush=True)
            deadline = time.monotonic() + seconds
    print(trips, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
