"""Event-driven trading: a `trading_tick` run when candles gained bars, a skip with its reason
otherwise, so the run list shows work, not noise.

The sensor's cursor is the storage id of the newest candles materialization it has handed to a
tick. A refresh that brings no bar records no materialization (assets/market.py), so it starts
nothing. One tick per account: while a `trading_tick` run is queued or running, new candles wait
(the cursor stays) and the next evaluation starts one tick for all of them; the trader's process
lock guards the same thing underneath. The run key is the candles event's id, so a retried
evaluation never starts a second run for the same bars.
"""

import dagster as dg

from assets.market import candles
from jobs.trading import trading_tick
from nettrace_dagster.settings import load_settings

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def node_driver() -> str | None:
    """The execution node holding the account's driver lease, if any (one driver per account)."""
    from nettrace_dagster.deploy.node import account_of
    from nettrace_dagster.deploy.positions import driver_of
    from nettrace_dagster.ledger.db import ledger_of

    settings = load_settings()
    return driver_of(ledger_of(settings), account_of("ewr", settings))


def newest_candles_event(instance: dg.DagsterInstance) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=candles.key), limit=1).records
    return records[0] if records else None


@dg.sensor(job=trading_tick, default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=60 * load_settings().nettrace_trading_tick_minutes,
           description="Starts trading_tick when candles gained bars (any symbol); skips with the reason "
                       "when nothing is new or a tick is still running.")
def trading_on_new_candles(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    newest = newest_candles_event(context.instance)
    if newest is None:
        return dg.SkipReason("no candles yet: nothing to trade")
    seen = int(context.cursor) if context.cursor else 0
    if newest.storage_id <= seen:
        return dg.SkipReason(f"no new candles since event {seen}: nothing to trade")
    driver = node_driver()
    if driver:
        return dg.SkipReason(f"execution node {driver} drives the account (its lease is live): trading_tick stands down")
    running = context.instance.get_run_records(dg.RunsFilter(job_name=trading_tick.name, statuses=ACTIVE), limit=1)
    if running:
        return dg.SkipReason(f"new candles wait: trading_tick run {running[0].dagster_run.run_id} is still "
                             "running (one tick per account)")
    context.update_cursor(str(newest.storage_id))
    partition = newest.asset_materialization.partition if newest.asset_materialization else None
    return dg.RunRequest(run_key=f"candles-{newest.storage_id}",
                         tags={"nettrace/trigger": f"candles {partition or ''}".strip()})
