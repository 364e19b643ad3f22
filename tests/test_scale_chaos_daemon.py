"""Chaos: the Dagster daemon killed with SIGKILL mid-tick and restarted.

The real `dagster-daemon` runs the project's `market_refresh_schedule` (one run per symbol per tick,
run key `<symbol>-<tick time>`). It is killed when the tick has created and queued the first of its
three runs (a test run coordinator pauses there: tests/scale_chaos_hooks.py) and restarted without
the pause. What must survive: the schedule resumes (the interrupted tick is finished by the new
daemon and the schedule stays on); the run keys keep the resumed tick from starting its first run a
second time — exactly one run per symbol for that tick, the first one the same run as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
    TickStatus,
)

from nettrace_dagster.instance import INSTANCE_CONFIG, prepare_home
from nettrace_dagster.settings import load_settings
from tests.scale import ROOT, process, project_env, stop, wait_for
from tests.scale_launch import daemon_argv, request_context, tune_instance

SCHEDULE = "market_refresh_schedule"


def schedule_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": SCHEDULE})))


@pytest.mark.slow(seconds=23)
def test_daemon_killed_mid_tick_resumes_without_duplicate_runs(home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Hourly: the interrupted tick (the top of this hour) is still the latest one when the second
    # daemon starts. (Dagster does not catch up a schedule without a partition set, so a tick
    # overtaken by a newer one while no daemon runs is skipped, not resumed.)
    monkeypatch.setenv("NETTRACE_CANDLES_REFRESH_MINUTES", "60")
    if time.gmtime().tm_min >= 58:  # too close to the next tick: wait for it
        time.sleep(3600 - time.time() % 3600 + 2)
    settings = load_settings()
    prepare_home(settings)
    # Runs stay queued (nothing launches them): the test is about ticks and run keys, not candles.
    runs_config = {**INSTANCE_CONFIG["concurrency"]["runs"], "max_concurrent_runs": 0}
    tune_instance(settings.dagster_home, drop=("run_queue",), concurrency={"runs": runs_config},
                  run_coordinator={"module": "tests.scale_chaos_hooks", "class": "PausingRunCoordinator",
                                   "config": {"dequeue_use_threads": True}})
    workspace = ROOT / "workspace.yaml"
    with dg.DagsterInstance.get() as instance:
        with request_context(instance, workspace) as ctx:
            schedule = ctx.get_code_location("nettrace").get_repository("__repository__").get_schedule(SCHEDULE)
            # On since before the top of the hour: the daemon owes it that tick right away.
            instance.add_instigator_state(InstigatorState(
                schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
                ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=time.time() - 3601)))
            origin_id, selector_id = schedule.get_remote_origin_id(), schedule.selector_id
        marker = tmp_path / "paused"
        env = project_env(home, NETTRACE_CANDLES_REFRESH_MINUTES="60")
        with process(daemon_argv(workspace), {**env, "NETTRACE_TEST_PAUSE_MARKER": str(marker)},
                     tmp_path / "daemon-a.log") as daemon:
            wait_for(marker.exists, 90, "the daemon to queue the tick's first run", proc=daemon,
                     log=tmp_path / "daemon-a.log")
            stop(daemon, grace=0)  # SIGKILL to the daemon and its code server, mid-tick
        first_run = marker.read_text()
        ticks = instance.get_ticks(origin_id, selector_id)
        assert ticks and ticks[0].status == TickStatus.STARTED  # the kill interrupted the tick
        tick_time = ticks[0].timestamp
        assert [r.run_id for r in schedule_runs(instance)] == [first_run]

        with process(daemon_argv(workspace), env, tmp_path / "daemon-b.log") as daemon:
            wait_for(lambda: (t := instance.get_ticks(origin_id, selector_id)) and any(
                x.timestamp == tick_time and x.status == TickStatus.SUCCESS for x in t), 90,
                "the restarted daemon to finish the interrupted tick", proc=daemon, log=tmp_path / "daemon-b.log")
            tick = next(x for x in instance.get_ticks(origin_id, selector_id) if x.timestamp == tick_time)
            state = instance.get_instigator_state(origin_id, selector_id)

        stamp = time.strftime("%Y%m%dT%H%M", time.gmtime(tick_time))
        of_tick = [r for r in schedule_runs(instance) if r.tags.get("dagster/run_key", "").endswith(stamp)]
        keys = sorted(r.tags["dagster/run_key"] for r in of_tick)
        assert keys == sorted(f"{s}-{stamp}" for s in settings.symbols)  # one run per symbol, none twice
        assert first_run in {r.run_id for r in of_tick}  # the run made before the kill is the one kept
        assert sorted(tick.run_ids) == sorted(r.run_id for r in of_tick)
        assert {r.tags["dagster/partition"] for r in of_tick} == set(settings.symbols)
        assert state is not None and state.status == InstigatorStatus.RUNNING  # the schedule stays on
