"""Load through the run queue: throughput and queueing delay, SQLite instance vs PostgreSQL instance.

Submits N runs at once (backtest-like, optimization-like and paper ticks from tests/scale_load_defs.py,
under the compute quotas: 3 backtest-kind, 5 paper, 8 in all), lets a real `dagster-daemon` dequeue and
launch them (one run worker process each), and reports:
- throughput: runs finished per minute, from the daemon's start (all runs already queued) to the
  last run's end — the daemon, its code server and every run worker start inside that window;
- queueing delay: a run's start minus the daemon's start (p50 / max): how long it waited its turn;
- the most steps of each kind that ran at once (must stay within the quota) and any failure.

    python benchmarks/bench_load.py [--runs 12] [--work 0.5] [--instance sqlite|postgres|both]

PostgreSQL: a scratch database on 127.0.0.1:5432 (tests/pg.py), dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def plan(runs: int) -> dict[str, int]:
    """Half paper ticks, the rest split between backtests and optimizations (the quota-bound kinds)."""
    paper = runs // 2
    backtest = (runs - paper + 1) // 2
    return {"load_backtest": backtest, "load_optimization": runs - paper - backtest, "load_paper": paper}


def measure(kind: str, runs: int, work: float, pg_url: str | None) -> dict:
    import dagster as dg

    from nettrace_dagster.instance import prepare_home
    from nettrace_dagster.settings import load_settings
    from tests.scale import process, project_env
    from tests.scale_launch import (
        daemon_argv,
        max_overlap,
        request_context,
        step_intervals,
        submit,
        tune_instance,
        write_workspace,
    )

    with tempfile.TemporaryDirectory(prefix=f"bench-load-{kind}-") as tmp:
        home = Path(tmp) / "home"
        extra = {"NETTRACE_LOAD_WORK_S": str(work)}
        if pg_url:
            extra["NETTRACE_DAGSTER_PG_URL"] = pg_url
        env = project_env(home, **extra)
        for key in [k for k in os.environ if k.startswith(("NETTRACE_", "DAGSTER_"))]:
            del os.environ[key]  # this process reads the same instance as the daemon it starts
        os.environ.update({k: v for k, v in env.items() if k.startswith(("NETTRACE_", "DAGSTER_"))})
        settings = load_settings()
        prepare_home(settings)
        tune_instance(settings.dagster_home, run_queue={"dequeue_interval_seconds": 1})
        workspace = write_workspace(Path(tmp) / "workspace.yaml", "tests.scale_load_defs", "load")
        with dg.DagsterInstance.get() as instance:
            keys = [f"slot-{i:03d}" for i in range(runs)]
            instance.add_dynamic_partitions("load_slot", keys)
            ids: list[str] = []
            slot = iter(keys)
            start = time.time()
            with request_context(instance, workspace) as ctx:
                for job, count in plan(runs).items():
                    ids += [submit(instance, ctx, "load", job, tags={"dagster/partition": next(slot)})
                            for _ in range(count)]
            submitted = time.time() - start
            daemon_start = time.time()  # the queue opens: delays and throughput count from here
            with process(daemon_argv(workspace), env, Path(tmp) / "daemon.log"):
                deadline = time.time() + 60 + 20 * runs
                while time.time() < deadline:
                    statuses = [r.status.value for r in instance.get_runs(dg.RunsFilter(run_ids=ids))]
                    if all(s in FINISHED for s in statuses):
                        break
                    time.sleep(0.5)
            records = instance.get_run_records(dg.RunsFilter(run_ids=ids))
            steps = step_intervals(instance, ids)
            locked = sum("database is locked" in (e.message or "") for i in ids for e in instance.all_logs(i))
        ends = [r.end_time for r in records if r.end_time]
        waits = sorted(r.start_time - max(r.create_timestamp.timestamp(), daemon_start)
                       for r in records if r.start_time)
        elapsed = max(ends) - daemon_start if ends else float("nan")
        by_kind: dict[str, list[tuple[float, float]]] = {}
        for s in steps:
            by_kind.setdefault(s["kind"], []).append((s["start"], s["end"]))
        return {
            "instance": kind, "runs": runs, "work_s": work,
            "succeeded": sum(r.dagster_run.status.value == "SUCCESS" for r in records),
            "failed": sum(r.dagster_run.status.value != "SUCCESS" for r in records),
            "lock_errors": locked, "materializations": len(steps),
            "submit_s": round(submitted, 2), "elapsed_s": round(elapsed, 1),
            "runs_per_min": round(60 * len(ends) / elapsed, 1) if ends else 0.0,
            "queue_delay_p50_s": round(statistics.median(waits), 1) if waits else None,
            "queue_delay_max_s": round(waits[-1], 1) if waits else None,
            "max_concurrent_steps": {k: max_overlap(v) for k, v in by_kind.items()},
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--work", type=float, default=0.5, help="seconds of work per step")
    parser.add_argument("--instance", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    results = []
    if args.instance in ("sqlite", "both"):
        results.append(measure("sqlite", args.runs, args.work, None))
    if args.instance in ("postgres", "both"):
        from tests.pg import scratch_database
        from tests.scale import dagster_pg_url

        with scratch_database("nettrace_bench") as db, db.schema("dg") as schema:
            results.append(measure("postgres", args.runs, args.work, dagster_pg_url(db, schema)))
    print(f"# {platform.node()} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'instance':<9} {'runs':>4} {'ok':>3} {'elapsed s':>9} {'runs/min':>8} {'wait p50':>8} "
          f"{'wait max':>8}  max steps at once")
    for r in results:
        print(f"{r['instance']:<9} {r['runs']:>4} {r['succeeded']:>3} {r['elapsed_s']:>9} {r['runs_per_min']:>8} "
              f"{r['queue_delay_p50_s']:>8} {r['queue_delay_max_s']:>8}  {r['max_concurrent_steps']}")
    print(json.dumps(results))
    return 0 if all(r["failed"] == 0 and r["lock_errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
