"""`nettrace demo` end to end: the whole graph, a summary, and the history left in the instance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from nettrace_dagster.demo import DemoReport, format_report

ROOT = Path(__file__).resolve().parents[1]


def test_demo_materializes_everything_into_the_instance(home: Path) -> None:
    env = {**os.environ, "NETTRACE_HOME": str(home), "NETTRACE_SIM_BARS": "3000"}
    env.pop("DAGSTER_HOME", None)  # the demo must set it itself, under NETTRACE_HOME
    nettrace = Path(sys.executable).with_name("nettrace")
    proc = subprocess.run([str(nettrace), "demo", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and not report["failed"] and report["checks"]["failed"] == 0
    materialized = set(report["materialized"])
    for symbol in ("BTC-USDT", "ETH-USDT", "SOL-USDT"):
        assert {f"candles[{symbol}]", f"regimes[{symbol}]"} <= materialized
    assert "market_summary" in materialized
    summaries = {s["asset"]: s["summary"] for s in report["summaries"]}
    assert "balanced accuracy" in summaries["regimes[BTC-USDT]"]

    # What the UI shows next time: the runs and materializations are in NETTRACE_HOME's instance.
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == report["runs"]
        assert instance.get_latest_materialization_event(dg.AssetKey("market_summary")) is not None
    assert "enabled: false" in (home / "dagster" / "dagster.yaml").read_text()  # telemetry off


def test_human_summary_names_failures() -> None:
    report = DemoReport(runs=2, materialized=["candles[BTC-USDT]"], summaries=[("candles[BTC-USDT]", "10 bars")],
                        failed=["regimes[BTC-USDT]: boom"], seconds=1.5)
    text = format_report(report)
    assert text.splitlines()[0].startswith("NetTrace demo: 1 materializations in 2 runs")
    assert "FAILED regimes[BTC-USDT]: boom" in text and not report.ok


def test_a_failed_step_is_reported_by_its_root_cause() -> None:
    from dagster._utils.error import SerializableErrorInfo

    from nettrace_dagster.demo import _root_cause

    inner = SerializableErrorInfo("WarehouseError: lake file candles/BTC-USDT.parquet is truncated\n", [], "WarehouseError")
    outer = SerializableErrorInfo('Error occurred while executing op "market_summary":', [],
                                  "DagsterExecutionStepExecutionError", cause=inner)
    assert _root_cause(outer) == "WarehouseError: lake file candles/BTC-USDT.parquet is truncated"
