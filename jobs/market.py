"""Market data refresh: candles then regimes for every symbol, on a schedule."""


import dagster as dg

from assets.market import candles, regimes
from nettrace_dagster.cron import every_minutes_cron
from nettrace_dagster.partitions import symbol_partitions
from nettrace_dagster.settings import load_settings

market_refresh = dg.define_asset_job(
    "market_refresh", selection=dg.AssetSelection.assets(candles, regimes), partitions_def=symbol_partitions,
    description="Fetch new candles for one symbol, check them, and relabel its regimes.")


@dg.schedule(cron_schedule=every_minutes_cron(load_settings().nettrace_candles_refresh_minutes,
                                             "NETTRACE_CANDLES_REFRESH_MINUTES"),
             job=market_refresh, default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Refreshes candles (then regimes) for every symbol every "
                         "NETTRACE_CANDLES_REFRESH_MINUTES; a refresh with no new bar writes nothing.")
def market_refresh_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """One run per symbol each tick; the tick time in the run key makes retries idempotent."""
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"{symbol}-{tick}", partition_key=symbol)
            for symbol in symbol_partitions.get_partition_keys()]


analytics_refresh = dg.define_asset_job(
    "analytics_refresh", selection=dg.AssetSelection.groups("analytics"),
    description="Rebuild the DuckDB analytics over the lake (market summary).")
