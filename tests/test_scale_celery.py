"""The scale-out path for real: the Dagster instance on PostgreSQL, every step of the demo's runs
executed by two `nettrace worker` processes (Celery over Redis), the ledger on PostgreSQL.

Skipped with the reason on a machine without Redis or PostgreSQL; a failure in CI, where both run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from sqlalchemy import func, select

from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import PaperOrder
from tests.pg import ScratchDatabase
from tests.scale import (  # noqa: F401 - fixtures
    ROOT,
    amqp_url,
    dagster_pg_url,
    nettrace,
    process,
    project_env,
    redis_url,
    wait_for,
)

pytestmark = pytest.mark.postgres


def worker_names(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker that executed it (dagster-celery's engine event)."""
    names = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            names[record.step_key] = str(metadata["Celery worker"].value)
    return names


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    return {r.step_key: r.dagster_event.pid for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}


@pytest.mark.slow(seconds=55)
def test_demo_runs_on_two_celery_workers_with_postgres_instance(
        tmp_path: Path, pg_database: ScratchDatabase, redis_url: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    with pg_database.schema("dg") as dagster_schema, pg_database.schema("ledger") as ledger_schema:
        pg_instance = dagster_pg_url(pg_database, dagster_schema)
        env = project_env(home, NETTRACE_DAGSTER_PG_URL=pg_instance, NETTRACE_CELERY_BROKER_URL=redis_url,
                          NETTRACE_LEDGER_URL=pg_database.url(ledger_schema), NETTRACE_TRADER_CATCH_UP_BARS="300")
        logs = {name: tmp_path / f"{name}.log" for name in ("alpha", "beta")}
        with process(nettrace("worker", "--name", "alpha"), env, logs["alpha"]) as alpha, \
                process(nettrace("worker", "--name", "beta"), env, logs["beta"]) as beta:
            for proc, (name, log) in zip((alpha, beta), logs.items(), strict=True):
                wait_for(lambda log=log: "ready." in log.read_text(errors="replace"), 60,
                         f"worker {name} to connect to the broker", proc=proc, log=log)
            driver = subprocess.run([sys.executable, "tests/scale_demo_driver.py"], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=300)
        assert driver.returncode == 0, driver.stderr[-3000:]
        runs = json.loads(driver.stdout.strip().splitlines()[-1])["runs"]
        jobs = {r["job"] for r in runs}
        assert {"market_refresh", "analytics_refresh", "backtest_refresh", "trading_tick"} <= jobs, jobs
        assert [r for r in runs if not r["success"]] == [], runs

        monkeypatch.setenv("NETTRACE_DAGSTER_PG_URL", pg_instance)  # dagster.yaml names it
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster"))) as instance:
            from dagster_postgres import PostgresRunStorage

            assert isinstance(instance.run_storage, PostgresRunStorage)
            by_step: dict[str, str] = {}
            pids: set[int] = set()
            for run in runs:
                record = instance.get_run_by_id(run["run_id"])
                assert record is not None and record.status == dg.DagsterRunStatus.SUCCESS
                names, done = worker_names(instance, run["run_id"]), step_pids(instance, run["run_id"])
                assert done, f"run {run['job']} executed no step"
                # every step that succeeded was executed by a Celery worker, none by the launcher
                assert set(done) <= set(names), (run["job"], sorted(done), names)
                by_step.update({f"{run['job']}[{run['partition']}].{k}": v for k, v in names.items()})
                pids.update(done.values())
            materialized = {e.dagster_event.asset_key for run in runs for e in instance.all_logs(
                run["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)}
        hosts = {name.split("@", 1)[0] for name in by_step.values()}
        assert hosts == {"alpha", "beta"}, by_step  # steps landed on both workers
        assert driver_pid_absent(pids, alpha.pid, beta.pid)
        assert {dg.AssetKey(k) for k in ("candles", "regimes", "market_summary", "backtests", "portfolio")} \
            <= materialized, materialized
        ledger = Ledger(pg_database.url(ledger_schema))
        try:
            with ledger.read() as s:  # the trading tick ran on a worker and booked into the shared ledger
                assert s.scalar(select(func.count()).select_from(PaperOrder)) > 0
        finally:
            ledger.dispose()


def driver_pid_absent(pids: set[int], *worker_pids: int) -> bool:
    """Steps ran in the workers' pool processes: at least two distinct pids, none a worker's main pid
    or the test process."""
    return len(pids) >= 2 and not pids & {*worker_pids, __import__("os").getpid()}


AMQP_DRIVER = """
import json, sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from nettrace_dagster.instance import prepare_home
from nettrace_dagster.settings import load_settings
prepare_home(load_settings())
repo = ReconstructableRepository.for_module("tests.scale_load_defs", "defs", working_directory=".")
with dg.DagsterInstance.get() as instance:
    instance.add_dynamic_partitions("load_slot", ["amqp-1"])
    result = dg.execute_job(repo.get_reconstructable_job("load_distributed"), instance,
                            tags={"dagster/partition": "amqp-1"})
    print(json.dumps({"run_id": result.run_id, "success": result.success}))
"""


@pytest.mark.slow(seconds=10)
def test_a_step_over_rabbitmq_on_a_nettrace_worker(home: Path, tmp_path: Path, amqp_url: str,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The AMQP broker (RabbitMQ) works like Redis: the step runs on the worker, its result comes back."""
    env = project_env(home, NETTRACE_CELERY_BROKER_URL=amqp_url, NETTRACE_LOAD_WORK_S="0.2")
    log = tmp_path / "rabbit.log"
    with process(nettrace("worker", "--name", "rabbit"), env, log) as worker:
        wait_for(lambda: "ready." in log.read_text(errors="replace"), 60, "the worker to connect to RabbitMQ",
                 proc=worker, log=log)
        driver = subprocess.run([sys.executable, "-c", AMQP_DRIVER], env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=180)
    assert driver.returncode == 0, driver.stderr[-3000:]
    outcome = json.loads(driver.stdout.strip().splitlines()[-1])
    assert outcome["success"]
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    with dg.DagsterInstance.get() as instance:
        names = worker_names(instance, outcome["run_id"])
    assert set(names) == {"backtest_like"} and names["backtest_like"].startswith("rabbit@"), names
    assert (home / "lake" / "backtest_like" / "amqp-1.parquet").is_file()
