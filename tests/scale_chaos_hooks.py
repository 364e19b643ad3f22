"""A run coordinator for the daemon chaos test, loaded by a real `dagster-daemon` from dagster.yaml.

It is Dagster's QueuedRunCoordinator; when NETTRACE_TEST_PAUSE_MARKER names a file that does not
exist yet, the first run a schedule has it queue writes that file (the run id) and then holds the daemon's
scheduler thread — so the test can SIGKILL the daemon at a known point: mid-tick, after the first of
the tick's runs was created and queued and before the others exist or the tick is marked done.
"""

import os
import time
from pathlib import Path

from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator


class PausingRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context):  # noqa: ANN001, ANN201 - Dagster's signature
        run = super().submit_run(context)
        marker = os.environ.get("NETTRACE_TEST_PAUSE_MARKER")
        scheduled = context.dagster_run.tags.get("dagster/schedule_name")  # not a sensor's run
        if marker and scheduled and not Path(marker).exists():
            Path(marker).write_text(run.run_id)
            time.sleep(300)  # until the test kills this process
        return run
