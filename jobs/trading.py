"""The trading loop's driver on a single machine: `trading_tick` on a schedule."""

import dagster as dg

from assets.portfolio import portfolio
from nettrace_dagster.coordinator.quotas import run_tags
from nettrace_dagster.cron import every_minutes_cron
from nettrace_dagster.settings import load_settings

trading_tick = dg.define_asset_job(
    "trading_tick", selection=[portfolio], tags=run_tags("paper"),
    description="Reconcile, trade the latest bars through the execution layer, record the portfolio.")


@dg.schedule(cron_schedule=every_minutes_cron(load_settings().nettrace_trading_tick_minutes,
                                             "NETTRACE_TRADING_TICK_MINUTES"), job=trading_tick, default_status=dg.DefaultScheduleStatus.RUNNING)
def trading_tick_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """One tick per scheduled minute; the tick time is the run key, so a retried evaluation never
    starts a second run (and the trader's lease stops two ticks overlapping anyway)."""
    return dg.RunRequest(run_key=context.scheduled_execution_time.strftime("tick-%Y%m%dT%H%M"))
