"""Run by test_concurrency in a fresh process: every symbol's market_refresh at once, each with
the multiprocess executor, while other threads query the warehouse and build the DuckDB summary.
Prints one JSON line with what happened."""

import json
import time
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg


def refresh_job() -> dg.JobDefinition:
    from nettrace_dagster.definitions import defs

    return defs.resolve_job_def("market_refresh")


def summary_job() -> dg.JobDefinition:
    from nettrace_dagster.definitions import defs

    return defs.resolve_implicit_global_asset_job_def()


def main() -> None:
    from nettrace_dagster.instance import prepare_home
    from nettrace_dagster.settings import load_settings
    from nettrace_dagster.warehouse import Warehouse

    settings = load_settings()
    symbols = settings.symbols
    errors: list[str] = []
    stop = threading.Event()
    queries = 0

    def hammer() -> None:
        nonlocal queries
        wh = Warehouse(settings.lake_dir, settings.audit_dir)
        while not stop.is_set():
            try:
                if "candles" in wh.views():
                    wh.query("SELECT partition, count(*) FROM candles GROUP BY 1")
                    queries += 1
            except Exception as exc:  # any failure here is what the test is looking for
                errors.append(f"query: {exc}")
            stop.wait(0.05)

    prepare_home(settings)
    with dg.DagsterInstance.get() as instance:
        readers = [threading.Thread(target=hammer) for _ in range(2)]
        for t in readers:
            t.start()
        with ThreadPoolExecutor(len(symbols) + 1) as pool:
            runs = [pool.submit(dg.execute_job, dg.reconstructable(refresh_job), instance,
                                tags={"dagster/partition": s}) for s in symbols]
            results = [r.result() for r in runs]
            summary = pool.submit(dg.execute_job, dg.reconstructable(summary_job), instance,
                                  asset_selection=[dg.AssetKey("market_summary")]).result()
        stop.set()
        for t in readers:
            t.join()
        failures = [e.message for r in [*results, summary] for e in r.all_events if e.is_failure]
        print(json.dumps({"runs_ok": [r.success for r in results], "summary_ok": summary.success,
                          "errors": errors + failures, "queries": queries,
                          "pids": len({e.pid for r in results for e in r.all_events if e.is_step_success})}))


if __name__ == "__main__":
    sys.exit(main())
