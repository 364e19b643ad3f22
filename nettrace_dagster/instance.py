"""The Dagster instance under NETTRACE_HOME: runs, event logs and schedules persist there, so
`nettrace demo` and `dagster dev` see the same history."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from nettrace_dagster.coordinator.quotas import RUN_TAG_LIMITS
from nettrace_dagster.settings import Settings

# Telemetry off; pools keep writers of one resource apart; the run queue bounds concurrency so a
# laptop is not swamped by a backfill, and enforces the coordinator's compute quotas for runs
# (3 backtests, 5 paper trades; live is unlimited) by their `nettrace/compute` tag.
INSTANCE_CONFIG = {
    "telemetry": {"enabled": False},
    "concurrency": {
        "pools": {"default_limit": 1},
        "runs": {"max_concurrent_runs": 8, "tag_concurrency_limits": RUN_TAG_LIMITS},
    },
}


def prepare_home(settings: Settings) -> Path:
    """Create the state folders and the instance config; point DAGSTER_HOME at it."""
    for folder in (settings.home, settings.lake_dir, settings.audit_dir, settings.dagster_home):
        folder.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(INSTANCE_CONFIG, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings.dagster_home
