"""`nettrace demo`: materialize the whole asset graph once, in dependency order, and summarise.

Runs go to the Dagster instance under NETTRACE_HOME, so every run, materialization and check
result is there when the user opens `dagster dev` next. Partitioned assets are materialized per
partition; each wave of assets whose upstreams are done runs together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from nettrace_dagster.instance import prepare_home
from nettrace_dagster.settings import Settings

# The console logger would print every step event; the summary is what a trader wants here.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class DemoReport:
    runs: int = 0
    failed: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    summaries: list[tuple[str, str]] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0})
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failed_checks

    def as_dict(self) -> dict:
        return {"ok": self.ok, "runs": self.runs, "seconds": round(self.seconds, 1),
                "materialized": self.materialized, "failed": self.failed, "checks": self.checks,
                "failed_checks": self.failed_checks,
                "summaries": [{"asset": a, "summary": s} for a, s in self.summaries]}


def waves(defs: dg.Definitions) -> list[tuple[object, list[dg.AssetKey]]]:
    """Groups of (partitions_def, asset keys) in an order where every upstream comes first."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    done: set[dg.AssetKey] = set()
    out: list[tuple[object, list[dg.AssetKey]]] = []
    while len(done) < len(keys):
        ready = [k for k in keys if k not in done
                 and all(p in done or not graph.get(p).is_materializable for p in graph.get(k).parent_keys)]
        groups: dict[object, list[dg.AssetKey]] = {}
        for key in ready:
            groups.setdefault(graph.get(key).partitions_def, []).append(key)
        for pdef, members in sorted(groups.items(), key=lambda g: g[0] is None):
            out.append((pdef, members))
        done.update(ready)
    return out


def run_demo(settings: Settings, progress: Callable[[str], None] = print) -> DemoReport:
    prepare_home(settings)
    from nettrace_dagster.definitions import defs  # after DAGSTER_HOME is set

    report, start = DemoReport(), time.monotonic()
    instance = dg.DagsterInstance.get()
    job = defs.resolve_implicit_global_asset_job_def()
    for pdef, keys in waves(defs):
        partition_keys = pdef.get_partition_keys() if pdef is not None else [None]
        names = ", ".join(k.to_user_string() for k in keys)
        for pk in partition_keys:
            label = f"{names}[{pk}]" if pk else names
            progress(f"materializing {label} …")
            result = job.execute_in_process(instance=instance, asset_selection=keys, partition_key=pk,
                                            raise_on_error=False, tags={"nettrace/source": "demo"},
                                            run_config=QUIET)
            report.runs += 1
            _collect(result, label, report)
    report.seconds = time.monotonic() - start
    return report


def _root_cause(error: Any) -> str:
    """The first line of the innermost error: Dagster wraps the asset's own exception, whose
    message is what a trader needs ("Error occurred while executing op" says nothing)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = (error.message or "").strip().splitlines()
    return lines[0] if lines else error.cls_name


def _collect(result: dg.ExecuteInProcessResult, label: str, report: DemoReport) -> None:
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        why = _root_cause(failures[0].step_failure_data.error) if failures else "run failed"
        report.failed.append(f"{label}: {why}")
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        name = mat.asset_key.to_user_string() + (f"[{mat.partition}]" if mat.partition else "")
        report.materialized.append(name)
        summary = mat.metadata.get("summary")
        if summary is not None:
            report.summaries.append((name, str(summary.value)))
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            report.checks["passed"] += 1
        else:
            report.checks["failed"] += 1
            report.failed_checks.append(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}: "
                                        f"{evaluation.description}")


def format_report(report: DemoReport) -> str:
    lines = [f"NetTrace demo: {len(report.materialized)} materializations in {report.runs} runs, "
             f"{report.seconds:.1f} s; checks {report.checks['passed']} passed, {report.checks['failed']} failed"]
    lines += [f"  {asset:<28} {text}" for asset, text in report.summaries]
    lines += [f"  FAILED {item}" for item in report.failed + report.failed_checks]
    lines.append("Open the UI: make ui   (http://127.0.0.1:3000)")
    return "\n".join(lines)
