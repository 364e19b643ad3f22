"""The coordinator's conflict rule for optimization: while a deploy runs, optimization waits.

An optimization asks `Coordinator.begin("optimization")`; a running deploy makes it "queued",
and a deploy that starts during the search queues it too (it must not publish parameters
mid-deploy). So the round waits before searching and again before publishing, until the
activity is "running" again (the deploy's end resumes it) or its lease expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.ledger.models import Activity


class OptimizationWaited(RuntimeError):
    """A deploy kept the optimization queued past its lease; one line."""


def activity_status(coordinator: Coordinator, activity_id: int) -> str:
    with coordinator.ledger.read() as s:
        act = s.get(Activity, activity_id)
        return act.status if act is not None else "done"


@contextmanager
def optimization_slot(coordinator: Coordinator, owner: str, ttl_s: float = 6 * 3600.0, poll_s: float = 5.0,
                      log: Callable[[str], None] = lambda _: None,
                      sleep: Callable[[float], None] = time.sleep) -> Iterator[Callable[[], None]]:
    """Hold an "optimization" activity; yields `wait()`, which returns once no deploy holds it
    queued. `wait()` runs on entry too. The activity ends on exit, whatever happened."""
    decision = coordinator.begin("optimization", owner, ttl_s=ttl_s)
    activity_id = decision.activity_id
    if activity_id is None:
        raise OptimizationWaited(f"optimization refused: {'; '.join(decision.reasons)}")
    deadline = coordinator.clock() + ttl_s

    def wait() -> None:
        said = False
        while (status := activity_status(coordinator, activity_id)) == "queued":
            if not said:
                log(f"a deploy is running: optimization {activity_id} waits (coordinator conflict rule)")
                said = True
            if coordinator.clock() > deadline:
                raise OptimizationWaited(f"optimization {activity_id} waited for a deploy past its lease")
            sleep(poll_s)
        if status != "running":
            raise OptimizationWaited(f"optimization {activity_id} is {status}, not running")

    try:
        wait()
        yield wait
    finally:
        coordinator.end(activity_id)
