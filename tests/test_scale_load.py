"""Load through the real run queue: 12 runs submitted at once (backtest-like, optimization-like and
paper ticks), dequeued by a real Dagster daemon under the instance's compute quotas (3 backtest-kind
runs, 5 paper runs, 8 runs in all), each run in its own run worker process, on the embedded SQLite
instance and the SQLite ledger — the default a user starts with.

Asserts: every run succeeded; no step of a kind ever overlapped more of its kind than the quota
allows (measured from the steps' own wall-clock intervals); runs waited their turn instead of
failing; no database-lock error anywhere in the event log; every partition's materialization and
every paper order is there.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from nettrace_dagster.coordinator.quotas import COMPUTE_QUOTAS
from nettrace_dagster.instance import INSTANCE_CONFIG, prepare_home
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.ledger.models import PaperOrder
from nettrace_dagster.settings import load_settings
from tests.scale import process, project_env, wait_for
from tests.scale_launch import (
    daemon_argv,
    max_overlap,
    request_context,
    step_intervals,
    submit,
    tune_instance,
    write_workspace,
)

PLAN = {"load_backtest": 3, "load_optimization": 3, "load_paper": 6}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def submit_plan(instance: dg.DagsterInstance, workspace: Path) -> dict[str, str]:
    """run id -> job, every run submitted before the daemon may start any."""
    keys = [f"slot-{i:02d}" for i in range(sum(PLAN.values()))]
    instance.add_dynamic_partitions("load_slot", keys)
    runs, slot = {}, iter(keys)
    with request_context(instance, workspace) as ctx:
        for job, count in PLAN.items():
            for _ in range(count):
                runs[submit(instance, ctx, "load", job, tags={"dagster/partition": next(slot)})] = job
    return runs


@pytest.mark.slow(seconds=28)
def test_twelve_runs_through_the_queue_respect_the_quotas(home: Path, tmp_path: Path) -> None:
    settings = load_settings()
    prepare_home(settings)
    tune_instance(settings.dagster_home, run_queue={"dequeue_interval_seconds": 1})
    workspace = write_workspace(tmp_path / "workspace.yaml", "tests.scale_load_defs", "load")
    env = project_env(home, NETTRACE_LOAD_WORK_S="0.3")
    with dg.DagsterInstance.get() as instance:
        runs = submit_plan(instance, workspace)
        queued = [r for r in instance.get_runs(dg.RunsFilter(run_ids=list(runs)))]
        assert len(queued) == 12 and {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}
        log = tmp_path / "daemon.log"
        with process(daemon_argv(workspace), env, log) as daemon:
            wait_for(lambda: all(r.status in FINISHED for r in instance.get_runs(dg.RunsFilter(run_ids=list(runs)))),
                     150, "all 12 runs to finish", interval=0.5, proc=daemon, log=log)
        records = instance.get_run_records(dg.RunsFilter(run_ids=list(runs)))
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 12, \
            [(runs[r.dagster_run.run_id], r.dagster_run.status.value) for r in records]

        locked = [e.message for run_id in runs for e in instance.all_logs(run_id)
                  if "database is locked" in (e.message or "") or "could not obtain lock" in (e.message or "")]
        assert locked == []

        steps = step_intervals(instance, list(runs))
        assert sorted(s["partition"] for s in steps) == [f"slot-{i:02d}" for i in range(12)]  # none lost
        for kind, limit in COMPUTE_QUOTAS.items():
            spans = [(s["start"], s["end"]) for s in steps if s["kind"] == kind]
            if limit is not None and spans:
                assert max_overlap(spans) <= limit, (kind, max_overlap(spans), limit)
        assert len([s for s in steps if s["kind"] == "backtest"]) == 6
        limit_all = INSTANCE_CONFIG["concurrency"]["runs"]["max_concurrent_runs"]
        assert max_overlap([(s["start"], s["end"]) for s in steps]) <= limit_all

        # Run level too: a run's whole life (its worker's start to end) under the same limits.
        by_kind: dict[str, list[tuple[float, float]]] = {}
        for r in records:
            by_kind.setdefault(r.dagster_run.tags["nettrace/compute"], []).append((r.start_time, r.end_time))
        assert 2 <= max_overlap(by_kind["backtest"]) <= COMPUTE_QUOTAS["backtest"]  # queued, yet concurrent
        assert max_overlap(by_kind["paper"]) <= COMPUTE_QUOTAS["paper"]
        # 6 backtest-kind runs, 3 slots: at least 3 of them waited in the queue for a slot to free up
        spans = by_kind["backtest"]
        waited = [s for s in spans if any(e <= s[0] for _, e in spans)]
        assert len(waited) >= len(spans) - COMPUTE_QUOTAS["backtest"]

    paper = [s for s in steps if s["kind"] == "paper"]
    assert len(paper) == 6
    ledger = ledger_of(load_settings())
    try:
        with ledger.read() as s:
            orders = s.scalar(select(func.count()).select_from(PaperOrder))
    finally:
        ledger.dispose()
    assert orders >= 1 and orders <= 6
    time.sleep(0)  # keep the ledger closed before the home is removed


@pytest.mark.parametrize("spans, expected", [([(0, 2), (1, 3), (2, 4)], 2), ([(0, 5), (1, 2), (1, 3)], 3), ([], 0)])
def test_max_overlap(spans: list[tuple[float, float]], expected: int) -> None:
    assert max_overlap(spans) == expected
