"""The NetTrace code location: every asset, check, job, schedule and sensor, with resources.

Assets, jobs and sensors live in their own top-level packages, one module per concern; each
package is loaded whole, so a new module's definitions appear here without editing this file.
The resources come from the environment of the process that imports this module; nothing that
moves money or is secret can be changed by a run's config (see `nettrace_dagster.resources`).
"""

from __future__ import annotations

import warnings

import dagster as dg

import assets
import jobs
import sensors
from nettrace_dagster.distributed import executor_for
from nettrace_dagster.resources import build_resources
from nettrace_dagster.settings import Settings, load_settings

# Package loading is a Dagster "preview" API; its warning would greet every CLI call and UI load.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The code location for `settings` (default: the process environment, read now)."""
    settings = settings or load_settings()
    return dg.Definitions.merge(
        dg.load_definitions_from_package_module(assets),
        dg.load_definitions_from_package_module(jobs),
        dg.load_definitions_from_package_module(sensors),
        # executor: Celery workers when NETTRACE_CELERY_BROKER_URL is set, else Dagster's default
        dg.Definitions(resources=build_resources(settings), executor=executor_for(settings)),
    )


defs = build_definitions()
