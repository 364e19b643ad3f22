"""The Dagster instance under NETTRACE_HOME: runs, event logs and schedules persist there, so
`nettrace demo` and `dagster dev` see the same history.

Embedded by default (SQLite files in `NETTRACE_HOME/dagster`); with `NETTRACE_DAGSTER_PG_URL` set,
run, event-log and schedule storage move to PostgreSQL through dagster-postgres, so a webserver, a
daemon and workers on several machines share one instance. `dagster.yaml` names that variable
(`{env: NETTRACE_DAGSTER_PG_URL}`) and never holds its value: the password stays in the
environment of each process, out of files and logs.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from nettrace_dagster.coordinator.quotas import RUN_TAG_LIMITS
from nettrace_dagster.settings import Settings

PG_URL_ENV = "NETTRACE_DAGSTER_PG_URL"

# Telemetry off; pools keep writers of one resource apart; the run queue bounds concurrency so a
# laptop is not swamped by a backfill, and enforces the coordinator's compute quotas for runs
# (3 backtests, 5 paper trades; live is unlimited) by their `nettrace/compute` tag.
INSTANCE_CONFIG: dict[str, Any] = {
    "telemetry": {"enabled": False},
    "concurrency": {
        "pools": {"default_limit": 1},
        "runs": {"max_concurrent_runs": 8, "tag_concurrency_limits": RUN_TAG_LIMITS},
    },
    # Launch dequeued runs from threads: one launch waits for its run worker to start (seconds on a
    # busy machine), so launching one after another would serialise runs the quotas allow at once.
    "run_queue": {"dequeue_use_threads": True, "dequeue_num_workers": 4},
}

# The one storage block NetTrace writes: PostgreSQL for runs, event logs and schedules.
PG_STORAGE: dict[str, Any] = {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}


def instance_config(settings: Settings) -> dict[str, Any]:
    """The keys NetTrace manages in `dagster.yaml` for these settings."""
    config = copy.deepcopy(INSTANCE_CONFIG)
    if settings.nettrace_dagster_pg_url:
        config["storage"] = copy.deepcopy(PG_STORAGE)
    return config


def merged_config(existing: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """`existing` with NetTrace's keys brought up to date; keys a user added are kept.

    Switching PG_URL off removes only the storage block NetTrace itself wrote, so a storage the
    user configured by hand is never dropped."""
    merged = dict(existing or {})
    wanted = instance_config(settings)
    if "storage" not in wanted and merged.get("storage") == PG_STORAGE:
        del merged["storage"]
    merged.update(wanted)
    return merged


def prepare_home(settings: Settings) -> Path:
    """Create the state folders and the instance config; point DAGSTER_HOME at it."""
    for folder in (settings.home, settings.lake_dir, settings.audit_dir, settings.dagster_home):
        folder.mkdir(parents=True, exist_ok=True)
    path = settings.dagster_home / "dagster.yaml"
    existing = yaml.safe_load(path.read_text()) if path.exists() else None
    config = merged_config(existing if isinstance(existing, dict) else None, settings)
    if config != existing:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, path)  # a concurrent reader sees the old file or the new one, never half
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings.dagster_home


def storage_kind(settings: Settings) -> str:
    """'postgres' or 'sqlite': where this home's runs and event logs live."""
    return "postgres" if settings.nettrace_dagster_pg_url else "sqlite"
