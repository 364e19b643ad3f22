"""Submitting runs to the run queue the way the UI and `dagster job launch` do, and running the
Dagster daemon that dequeues and launches them: for the load and chaos tests and
benchmarks/bench_load.py.

`submit` creates a run from the code location's remote job and hands it to the instance's run
coordinator (QueuedRunCoordinator: the run waits as QUEUED until the daemon's queue lets it start
under `max_concurrent_runs` and the compute quota tags).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml
from dagster._cli.job import _create_run
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))


def write_workspace(path: Path, module: str, location: str) -> Path:
    path.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": module, "location_name": location, "working_directory": str(Path(__file__).parents[1])}}]}))
    return path


def tune_instance(dagster_home: Path, drop: tuple[str, ...] = (), **keys: object) -> None:
    """Add keys to the generated dagster.yaml (kept by prepare_home's merge), e.g. a faster queue."""
    path = dagster_home / "dagster.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    for key in drop:
        config.pop(key, None)
    for key, value in keys.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) \
            else value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def daemon_argv(workspace: Path) -> list[str]:
    return [DAEMON, "run", "-w", str(workspace)]


@contextmanager
def request_context(instance: dg.DagsterInstance, workspace: Path) -> Iterator[WorkspaceRequestContext]:
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as process:
        yield process.create_request_context()


def create(instance: dg.DagsterInstance, ctx: WorkspaceRequestContext, location: str, job: str,
           tags: dict[str, str] | None = None, run_config: dict | None = None) -> str:
    code_location = ctx.get_code_location(location)
    repo = code_location.get_repository("__repository__")
    remote_job = repo.get_full_job(job)
    run = _create_run(instance=instance, code_location=code_location, remote_repo=repo, remote_job=remote_job,
                      run_config=run_config or {}, tags=tags or {}, op_selection=None, run_id=None)
    return run.run_id


def submit(instance: dg.DagsterInstance, ctx: WorkspaceRequestContext, location: str, job: str,
           tags: dict[str, str] | None = None, run_config: dict | None = None) -> str:
    """Into the run queue (QUEUED until the daemon launches it)."""
    run_id = create(instance, ctx, location, job, tags, run_config)
    instance.submit_run(run_id, ctx)
    return run_id


def submit_direct(instance: dg.DagsterInstance, ctx: WorkspaceRequestContext, location: str, job: str,
                  tags: dict[str, str] | None = None, run_config: dict | None = None) -> str:
    """Launched at once by the instance's run launcher (a run worker spawned by the code server)."""
    run_id = create(instance, ctx, location, job, tags, run_config)
    instance.launch_run(run_id, ctx)
    return run_id


def step_intervals(instance: dg.DagsterInstance, run_ids: list[str]) -> list[dict]:
    """Each materialization's step interval (metadata `pid`, `start`, `end`), with its run's kind tag."""
    out = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = record.dagster_event.step_materialization_data.materialization
            meta = mat.metadata
            out.append({"run_id": run_id, "kind": run.tags.get("nettrace/compute"), "partition": mat.partition,
                        "asset": mat.asset_key.to_user_string(), "pid": meta["pid"].value,
                        "start": meta["start"].value, "end": meta["end"].value})
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t opens)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def env_without_nettrace() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("NETTRACE_", "DAGSTER_"))}
