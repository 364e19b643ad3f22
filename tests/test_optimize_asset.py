"""The `optimized_params` asset through its named job, on a market with no edge (the file source,
a driftless random walk): every regime gets a study, no candidate passes, each says which gate test
stopped it — in the value, the metadata, the audit log and the demo's section."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from nettrace_dagster.audit import read_audit
from nettrace_dagster.definitions import build_definitions
from nettrace_dagster.optimize.demo import demo_section
from nettrace_dagster.optimize.paramset import ParamSet
from nettrace_dagster.settings import load_settings
from tests.optimize_data import random_walk

GATE_TESTS = {"constraints", "oos_trades", "oos_sharpe", "oos_folds", "dsr", "pbo"}


def test_no_edge_no_candidate_and_the_gate_says_why(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imports = tmp_path / "import"
    imports.mkdir()
    for k, symbol in enumerate(("BTC-USDT", "ETH-USDT", "SOL-USDT")):
        # driftless; volatile enough that the regime detector sees every regime somewhere
        random_walk(6_000, seed=20 + k, vol=2e-3).write_csv(imports / f"{symbol}.csv")
    monkeypatch.setenv("NETTRACE_MARKET_SOURCE", "file")
    monkeypatch.setenv("NETTRACE_IMPORT_DIR", str(imports))
    monkeypatch.setenv("PARAM_OPT_TRIALS", "8")
    settings = load_settings()
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    for symbol in settings.symbols:
        assert defs.resolve_job_def("market_refresh").execute_in_process(instance=instance, partition_key=symbol).success
    job = defs.resolve_job_def("param_optimization")
    assert job.tags.get("nettrace/compute") == "backtest"  # under the backtest quota
    for regime in ("BULL", "BEAR", "SIDEWAYS"):
        result = job.execute_in_process(instance=instance, partition_key=regime)
        assert result.success
        value = result.output_for_node("optimized_params")
        assert value["regime"] == regime and value["trials"] == 8
        assert ParamSet.from_json(value["param_set"]).content_id() == value["param_set_id"]
        mat = result.asset_materializations_for_node("optimized_params")[0]
        assert {"optimization_history", "dsr", "pbo", "verdict", "best_params", "failed_tests"} <= set(mat.metadata)
    payload, lines = demo_section(settings, instance)
    section = payload["optimization"]
    assert set(section) == {"BULL", "BEAR", "SIDEWAYS"}
    for regime, v in section.items():
        assert set(v) == {"trials", "in_sample_sharpe", "out_of_sample_sharpe", "out_of_sample_return", "dsr", "pbo",
                          "passed", "failed_tests"}
        assert v["passed"] is False and v["failed_tests"], regime
        assert all(f.split(":")[0] in GATE_TESTS for f in v["failed_tests"])
        assert all(np.isfinite(v[k]) for k in ("in_sample_sharpe", "dsr"))
    assert sum("stopped by" in line for line in lines) == 3
    events = [e for e in read_audit(settings.audit_dir, "param_optimization") if e["event"] == "study_finished"]
    assert sorted(e["regime"] for e in events) == ["BEAR", "BULL", "SIDEWAYS"]
    assert all(e["passed"] is False and e["failed_tests"] for e in events)
    assert (home / "optuna.db").exists()  # the default storage, under NETTRACE_HOME
