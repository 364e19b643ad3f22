"""Concurrent runs and steps never fail on a database lock (FACTS.md: one DuckDB writer per file)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace_dagster.market.lake import Lake

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow(seconds=53)
def test_all_symbols_at_once_with_the_multiprocess_executor(home: Path) -> None:
    env = {**os.environ, "NETTRACE_SIM_BARS": "3000", "NETTRACE_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "tests.concurrent_refresh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["runs_ok"] == [True, True, True] and report["summary_ok"]
    assert report["pids"] >= 3  # steps really ran in separate processes
    lake = Lake(home / "lake")
    assert lake.partitions("candles") == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert lake.read("market_summary")["bars"].to_list() == [3000, 3000, 3000]
