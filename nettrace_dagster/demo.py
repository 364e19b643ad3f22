"""`nettrace demo`: materialize the whole asset graph once, in dependency order, and summarise.

Runs go to the Dagster instance under NETTRACE_HOME, so every run, materialization and check
result is there when the user opens `dagster dev` next. Every run goes through a named job of the
code location (market_refresh per symbol, analytics_refresh, trading_tick …), upstream jobs first,
so the UI's run list reads as a story instead of "jobless asset materializations".
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from nettrace_dagster.instance import prepare_home
from nettrace_dagster.settings import Settings

# The console logger would print every step event; the summary is what a trader wants here.
# Jobs that run after every other ready job: the trader trades what the refreshes produced.
TRADING_LAST = ("trading_tick",)

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# The pillars' parts of the summary, after the graph has run, in this order (promotion reads what
# optimization produced; deploy ships what promotion put in force). Each is "module:function",
# called as function(settings, instance) -> (payload, lines): the payload's keys join the JSON
# document at its top level, the lines the human summary.
DEMO_SECTIONS: tuple[str, ...] = (
    "nettrace_dagster.discovery.demo:demo_section",
    "nettrace_dagster.optimize.demo:demo_section",
    "nettrace_dagster.promotion.demo:demo_section",
    "nettrace_dagster.deploy.demo:demo_section",
)


@dataclass
class DemoReport:
    runs: int = 0
    failed: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    summaries: list[tuple[str, str]] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0})
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    jobs: list[str] = field(default_factory=list)  # the runs, as job[partition], in order
    jobs_defined_by_demo: list[str] = field(default_factory=list)  # assets no job in jobs/ selects
    sections: dict[str, Any] = field(default_factory=dict)  # the pillars' keys (DEMO_SECTIONS)
    section_lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failed_checks

    def as_dict(self) -> dict:
        return {"ok": self.ok, "runs": self.runs, "seconds": round(self.seconds, 1),
                "materialized": self.materialized, "failed": self.failed, "checks": self.checks,
                "failed_checks": self.failed_checks, "jobs": self.jobs,
                "jobs_defined_by_demo": self.jobs_defined_by_demo,
                "summaries": [{"asset": a, "summary": s} for a, s in self.summaries], **self.sections}


@dataclass
class DemoRun:
    """One run of the demo: a named job, the assets it materializes, one partition (or none)."""
    job: str
    keys: list[dg.AssetKey]
    partition_key: str | None = None

    @property
    def label(self) -> str:
        return self.job + (f"[{self.partition_key}]" if self.partition_key else "")


def named_jobs(defs: dg.Definitions) -> tuple[dg.Definitions, list[tuple[str, list[dg.AssetKey]]], list[str]]:
    """Every materializable asset under a named job, in an order where upstream jobs come first.

    Each asset goes to the first job in the code location that selects it; an asset no job
    selects gets a `<group>_refresh` job defined here (returned in the third item, so the demo can
    say which job the code location lacks). Returns the definitions with those jobs added."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    owner: dict[dg.AssetKey, str] = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        for key in job.asset_layer.selected_asset_keys:
            owner.setdefault(key, job.name)
    extra: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        if key not in owner:
            name = f"{graph.get(key).group_name or 'demo'}_refresh"
            extra.setdefault(name, []).append(key)
            owner[key] = name
    if extra:
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[
            dg.define_asset_job(name, selection=dg.AssetSelection.assets(*members),
                                description="Defined by `nettrace demo`: no job in jobs/ selects these assets.")
            for name, members in extra.items()]))
    members: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        members.setdefault(owner[key], []).append(key)
    ordered: list[tuple[str, list[dg.AssetKey]]] = []
    done: set[dg.AssetKey] = set()
    pending = dict(members)
    while pending:
        ready = [name for name, ks in pending.items()
                 if all(p in done or p in ks or not graph.get(p).is_materializable
                        for k in ks for p in graph.get(k).parent_keys)]
        ready.sort(key=lambda n: n in TRADING_LAST)  # the story ends with the trader on fresh data
        name = ready[0] if ready else next(iter(pending))  # a cycle between jobs: keep going in order
        ordered.append((name, pending.pop(name)))
        done.update(ordered[-1][1])
    return defs, ordered, sorted(extra)


def plan(defs: dg.Definitions) -> tuple[dg.Definitions, list[DemoRun], list[str]]:
    """The demo's runs: each named job once, a partitioned one once per partition."""
    defs, ordered, missing = named_jobs(defs)
    runs: list[DemoRun] = []
    for name, keys in ordered:
        pdef = defs.resolve_job_def(name).partitions_def
        for pk in pdef.get_partition_keys() if pdef is not None else [None]:
            runs.append(DemoRun(name, keys, pk))
    return defs, runs, missing


def run_demo(settings: Settings, progress: Callable[[str], None] | None = None) -> DemoReport:
    """Every asset once, through the named jobs (so the UI's run list reads as a story:
    market_refresh per symbol, then analytics, backtests, a trading tick). `progress` gets one
    line per run; None for silence."""
    prepare_home(settings)
    from nettrace_dagster.definitions import defs  # after DAGSTER_HOME is set

    report, start = DemoReport(), time.monotonic()
    instance = dg.DagsterInstance.get()
    defs, runs, report.jobs_defined_by_demo = plan(defs)
    for i, run in enumerate(runs, 1):
        names = ", ".join(k.to_user_string() for k in run.keys)
        if progress is not None:
            progress(f"[{i}/{len(runs)}] {run.label}: {names} …")
        job = defs.resolve_job_def(run.job)
        result = job.execute_in_process(instance=instance, asset_selection=run.keys, partition_key=run.partition_key,
                                        raise_on_error=False, tags={"nettrace/source": "demo"},
                                        run_config=QUIET)
        report.runs += 1
        report.jobs.append(run.label)
        label = f"{names}[{run.partition_key}]" if run.partition_key else names
        _collect(result, label, report)
    for spec in DEMO_SECTIONS:
        if progress is not None:
            progress(f"{spec.split(':')[0].rsplit('.', 2)[-2]} …")
        _section(spec, settings, instance, report)
    report.seconds = time.monotonic() - start
    return report


def _section(spec: str, settings: Settings, instance: dg.DagsterInstance, report: DemoReport) -> None:
    """One pillar's summary; its failure is a failed demo with one line, never a traceback."""
    module_name, function_name = spec.split(":")
    try:
        payload, lines = getattr(importlib.import_module(module_name), function_name)(settings, instance)
    except Exception as exc:  # the demo reports every pillar it can, then fails with the reason
        report.failed.append(f"{module_name.rsplit('.', 2)[-2]}: {type(exc).__name__}: {exc}".splitlines()[0])
        return
    report.sections.update(payload)
    report.section_lines.extend(lines)


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
    if report.jobs:
        counts: dict[str, int] = {}
        for label in report.jobs:
            job = label.split("[", 1)[0]
            counts[job] = counts.get(job, 0) + 1
        lines.append("  runs: " + ", ".join(f"{job} ×{n}" if n > 1 else job for job, n in counts.items()))
    width = max((len(asset) for asset, _ in report.summaries), default=0)
    lines += [f"  {asset:<{width}}  {text}" for asset, text in report.summaries]
    lines += [f"  {line}" for line in report.section_lines]
    lines += [f"  FAILED {item}" for item in report.failed + report.failed_checks]
    lines.append("Open the UI: make ui   (http://127.0.0.1:3000)")
    return "\n".join(lines)
