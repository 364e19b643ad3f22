"""The demo's `optimization` section: the latest `optimized_params` per regime, read back from the
Dagster instance (the lead wires `demo_section` into `nettrace demo`)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from nettrace_dagster.regimes import LABELS

ASSET_KEY = dg.AssetKey("optimized_params")
KEYS = ("trials", "in_sample_sharpe", "out_of_sample_sharpe", "out_of_sample_return", "dsr", "pbo", "passed",
        "failed_tests")


def latest_values(instance: dg.DagsterInstance) -> dict[str, dict[str, Any]]:
    """Each regime's latest value, from its materialization's `value` metadata (the asset records
    the value it returns there too, so reading it needs no IO manager)."""
    out: dict[str, dict[str, Any]] = {}
    for regime in LABELS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET_KEY, asset_partitions=[regime]), limit=1).records
        if not records:
            continue
        materialization = records[0].asset_materialization
        entry = materialization.metadata.get("value") if materialization is not None else None
        if entry is not None and isinstance(entry.value, dict):
            out[regime] = entry.value
    return out


def demo_section(settings: Any, instance: dg.DagsterInstance) -> tuple[dict, list[str]]:
    """`{"optimization": {REGIME: {trials, in_sample_sharpe, out_of_sample_sharpe, out_of_sample_return, dsr, pbo,
    passed, failed_tests}}}` and the summary lines a human reads."""
    values = latest_values(instance)
    section = {regime: {k: v[k] for k in KEYS} for regime, v in values.items()}
    lines = ["optimization (one Optuna study per regime; gate: walk-forward, deflated Sharpe, PBO):"]
    if not section:
        lines.append("  no optimized_params materialized yet")
    for regime, v in section.items():
        verdict = "passed the gate" if v["passed"] else "stopped by " + "; ".join(v["failed_tests"])
        lines.append(f"  {regime}: {v['trials']} trials, Sharpe in/out of sample {v['in_sample_sharpe']:.2f}/"
                     f"{v['out_of_sample_sharpe']:.2f}, out-of-sample return {v['out_of_sample_return']:+.2%}, "
                     f"DSR {v['dsr']:.2f}, PBO {v['pbo']:.2f} — {verdict}")
    return {"optimization": section}, lines
