"""Discovery: sources → opportunities → scores → generated strategies, on a schedule."""

import dagster as dg

from nettrace_dagster.cron import every_minutes_cron
from nettrace_dagster.settings import load_settings

discovery_refresh = dg.define_asset_job(
    "discovery_refresh", selection=dg.AssetSelection.groups("discovery"),
    description="Read every enabled discovery source, score the new opportunities, and generate strategy "
                "code for those at or above OPPORTUNITY_MIN_SCORE_FOR_SUBMISSION.")


@dg.schedule(cron_schedule=every_minutes_cron(load_settings().discovery_interval_minutes, "DISCOVERY_INTERVAL_MINUTES"),
             job=discovery_refresh, default_status=dg.DefaultScheduleStatus.RUNNING,
             description="One discovery pass every DISCOVERY_INTERVAL_MINUTES (default 6 h); feeds are fetched in the "
                         "run, never in the schedule's evaluation.")
def discovery_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """The tick time in the run key: a retried tick never starts a second pass."""
    return dg.RunRequest(run_key=f"discovery-{context.scheduled_execution_time.strftime('%Y%m%dT%H%M')}")
