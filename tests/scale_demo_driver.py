"""Run by test_scale_celery in a fresh process (the "launching machine"): every run of `nettrace
demo`'s plan, in its order, through `execute_job` on the instance under NETTRACE_HOME, with the
executor the code location picks from the settings (Celery when a broker is set). Prints one JSON
line: per run its id, job, partition, success and first failure."""

from __future__ import annotations

import json
import sys

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from nettrace_dagster.instance import prepare_home
from nettrace_dagster.settings import load_settings


def main() -> int:
    prepare_home(load_settings())
    from nettrace_dagster.definitions import defs
    from nettrace_dagster.demo import _root_cause, plan

    _, runs, extra = plan(defs)
    if extra:  # every demo job must exist in the code location, or workers could not load it
        print(json.dumps({"error": f"jobs only the demo defines: {extra}"}))
        return 1
    repo = ReconstructableRepository.for_module("nettrace_dagster.definitions", "defs", working_directory=".")
    out = []
    with dg.DagsterInstance.get() as instance:
        for run in runs:
            tags = {"dagster/partition": run.partition_key} if run.partition_key else {}
            result = dg.execute_job(repo.get_reconstructable_job(run.job), instance, asset_selection=run.keys,
                                    tags={**tags, "nettrace/source": "scale-test"})
            failures = [_root_cause(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
            out.append({"run_id": result.run_id, "job": run.job, "partition": run.partition_key,
                        "success": result.success, "failure": failures[0] if failures else None})
    print(json.dumps({"runs": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
