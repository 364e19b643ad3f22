"""Run by test_concurrency in a fresh process: every symbol's market_refresh at once — one
process per run, as the Dagster daemon launches them, each run with the multiprocess executor —
while threads here query the warehouse; then the DuckDB summary. Prints one JSON line."""

import json
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

import dagster as dg


def refresh_job() -> dg.JobDefinition:
    from nettrace_dagster.definitions import defs

    return defs.resolve_job_def("market_refresh")


def summary_job() -> dg.JobDefinition:
    from nettrace_dagster.definitions import defs

    return defs.resolve_job_def("analytics_refresh")


def _root_cause(error: object) -> str:
    from nettrace_dagster.demo import _root_cause as root

    return root(error)


def run_one(partition: str | None) -> dict:
    """One run in this process; Dagster's in-process orchestration is not thread-safe."""
    with dg.DagsterInstance.get() as instance:
        if partition is None:
            result = dg.execute_job(dg.reconstructable(summary_job), instance)
        else:
            result = dg.execute_job(dg.reconstructable(refresh_job), instance, tags={"dagster/partition": partition})
        return {"ok": result.success,
                "failures": [f"{e.message} {_root_cause(e.step_failure_data.error)}" if e.is_step_failure
                             else e.message for e in result.all_events if e.is_failure],
                "step_pids": sorted({e.pid for e in result.all_events if e.is_step_success})}


def main() -> None:
    from nettrace_dagster.instance import prepare_home
    from nettrace_dagster.settings import load_settings
    from nettrace_dagster.warehouse import Warehouse

    settings = load_settings()
    prepare_home(settings)
    with dg.DagsterInstance.get() as instance:  # create the storages once, before processes race
        instance.get_runs(limit=1)
    errors: list[str] = []
    stop = threading.Event()
    queries = 0

    def hammer() -> None:
        nonlocal queries
        wh = Warehouse(settings.lake_dir, settings.audit_dir)
        while not stop.is_set():
            try:
                if "candles" in wh.views():
                    wh.query("SELECT symbol, count(*) FROM candles GROUP BY 1")
                    queries += 1
            except Exception as exc:  # any failure here is what the test is looking for
                errors.append(f"query: {exc}")
            stop.wait(0.02)

    readers = [threading.Thread(target=hammer) for _ in range(2)]
    for t in readers:
        t.start()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(settings.symbols), mp_context=spawn) as pool:
        runs = list(pool.map(run_one, settings.symbols))
        summary = pool.submit(run_one, None).result()
    stop.set()
    for t in readers:
        t.join()
    print(json.dumps({"runs_ok": [r["ok"] for r in runs], "summary_ok": summary["ok"],
                      "errors": errors + [f for r in [*runs, summary] for f in r["failures"]],
                      "queries": queries, "pids": len({p for r in runs for p in r["step_pids"]})}))


if __name__ == "__main__":
    main()
