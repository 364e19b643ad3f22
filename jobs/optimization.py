"""Parameter optimization: one study per regime every PARAM_OPT_INTERVAL_HOURS, under the
compute quota for backtests (at most 3 such runs at once; the rest wait in the run queue)."""

import dagster as dg

from assets.optimization import optimized_params, regime_partitions
from nettrace_dagster.coordinator.quotas import run_tags
from nettrace_dagster.settings import load_settings

param_optimization = dg.define_asset_job(
    "param_optimization", selection=[optimized_params], tags=run_tags("backtest"),
    description="Search the parameters of one regime (Optuna) and judge the best set out of sample "
                "(walk-forward, deflated Sharpe, PBO). Waits while a deploy runs.")


def interval_cron(hours: int) -> str:
    """Every `hours` hours on the hour (from midnight UTC; a count that does not divide 24 restarts
    at midnight)."""
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"


@dg.schedule(cron_schedule=interval_cron(load_settings().param_opt_interval_hours), job=param_optimization,
             default_status=dg.DefaultScheduleStatus.RUNNING, execution_timezone="UTC",
             description="Optimizes every regime every PARAM_OPT_INTERVAL_HOURS (6).")
def param_optimization_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """One run per regime each tick; the tick time in the run key makes retries idempotent."""
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"{regime}-{tick}", partition_key=regime, tags=run_tags("backtest"))
            for regime in regime_partitions.get_partition_keys()]
