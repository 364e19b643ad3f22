"""Backtests of the parameters in force on every symbol, under the compute quota for backtests.

The `backtests` asset also follows its inputs by itself (an eager automation condition); this job
is what the demo runs and what a trader launches by hand from the UI."""

import dagster as dg

from assets.backtests import backtests
from nettrace_dagster.coordinator.quotas import run_tags

backtest_refresh = dg.define_asset_job(
    "backtest_refresh", selection=[backtests], tags=run_tags("backtest"),
    description="Backtest every strategy in force on every symbol, per regime (at most 3 backtest runs at once).")
