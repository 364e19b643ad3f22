"""The trading loop's driver on a single machine: the `trading_tick` job, started by new candles
(sensors/trading.py), not by the clock."""

import dagster as dg

from assets.portfolio import portfolio
from nettrace_dagster.coordinator.quotas import run_tags

trading_tick = dg.define_asset_job(
    "trading_tick", selection=[portfolio], tags=run_tags("paper"),
    description="Reconcile, trade the latest bars through the execution layer, record the portfolio. "
                "Started by the trading_on_new_candles sensor when candles gain bars.")
