"""`nettrace demo` end to end: the whole graph, a summary, and the history left in the instance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from nettrace_dagster.demo import DemoReport, format_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow(seconds=31)
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

    # The pillars' keys (the issues' JSON contracts): optimization per regime with the gate's
    # evidence, the promotion replay, discovery's funnel, the local deploy.
    assert set(report["optimization"]) == {"BULL", "BEAR", "SIDEWAYS"}
    for regime, gate in report["optimization"].items():
        assert {"trials", "in_sample_sharpe", "out_of_sample_sharpe", "out_of_sample_return", "dsr", "pbo",
                "passed", "failed_tests"} <= set(gate), regime
        assert gate["trials"] > 0 and (gate["passed"] or gate["failed_tests"]), regime  # a stop says why
    assert report["promotion"], "no candidate reached the promotion pipeline"
    assert all({"candidate", "stages", "final_stage"} <= set(c) for c in report["promotion"])
    assert "baseline_vs_promoted" in report
    assert set(report["discovery"]) == {"opportunities", "scored", "above_threshold", "generated", "validated",
                                        "rejected", "in_review"}
    assert report["discovery"]["generated"] >= 1
    deploy = report["deploy"]
    assert deploy["ok"] and [st["stage"] for st in deploy["stages"]] == ["canary", "primary", "full"]

    # What the UI shows next time: the runs and materializations are in NETTRACE_HOME's instance.
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == report["runs"]
        # Every run under a named job, so the UI's history reads as a story (no jobless runs).
        jobs = {run.job_name for run in runs}
        assert "__ASSET_JOB" not in jobs and all(not name.startswith("__") for name in jobs), jobs
        assert {"market_refresh", "analytics_refresh", "trading_tick"} <= jobs
        assert report["jobs"][-1] == "trading_tick"  # the story ends with the trader
        partitions = sorted(r.tags.get("dagster/partition") for r in runs if r.job_name == "market_refresh")
        assert partitions == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
        assert instance.get_latest_materialization_event(dg.AssetKey("market_summary")) is not None
    assert "materializing" not in proc.stderr and "[1/" not in proc.stderr  # --json: no progress lines
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


def test_demo_progress_only_on_a_terminal_and_never_with_json(monkeypatch, capsys) -> None:
    from nettrace_dagster import demo
    from nettrace_dagster.cli import main

    seen = []

    def fake_run_demo(settings, progress=None):
        seen.append(progress)
        if progress is not None:
            progress("[1/1] market_refresh[BTC-USDT]: candles, regimes …")
        return DemoReport(runs=1)

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    monkeypatch.setattr("nettrace_dagster.cli.market.ensure_home", lambda settings: None)
    monkeypatch.setattr("nettrace_dagster.ledger.db.ledger_of", lambda settings: None)
    for tty, flags, shown in ((True, [], True), (True, ["--json"], False), (False, [], False)):
        monkeypatch.setattr("sys.stderr.isatty", lambda tty=tty: tty)
        assert main(["demo", *flags]) == 0
        out, err = capsys.readouterr()
        assert ("[1/1] market_refresh" in err) is shown and "[1/1]" not in out
        assert (seen[-1] is not None) is shown
