"""Candle freshness: a feed that stalls turns the candles red in the UI instead of going quiet.

A freshness check fails once no candles have been stored for `CANDLES_MAX_AGE`, and a sensor
(running by default) evaluates it whenever it could have become overdue. "Stored" is the
materialization time, except for a live exchange feed (ccxt), whose materializations carry the
close time of their newest bar (`dagster/last_updated_timestamp`, see assets/market.py): a feed
that answers but delivers no new bars is stalled too.

The check is asset-wide: it looks at the newest materialization of any symbol, so it goes red
when the feed as a whole stops, not when one symbol alone falls behind.

`build_last_update_freshness_checks` is superseded by `FreshnessPolicy` since Dagster 1.12, but
policies are still a preview in open-source Dagster (evaluated by the daemon only, behind a
dagster.yaml switch); the check runs in any run, shows its result on the asset and is testable.
"""

import warnings
from datetime import timedelta

import dagster as dg

from assets.market import candles
from nettrace_dagster.market.schema import timeframe_seconds
from nettrace_dagster.settings import load_settings

_settings = load_settings()
# Two missed refreshes (a slow run, a restart) are tolerated; a live feed's newest bar also lags
# the clock by up to one timeframe.
CANDLES_MAX_AGE = (timedelta(minutes=3 * _settings.nettrace_candles_refresh_minutes)
                   + timedelta(seconds=timeframe_seconds(_settings.nettrace_timeframe)))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)  # see the module docstring
    candles_freshness_checks = dg.build_last_update_freshness_checks(
        assets=[candles], lower_bound_delta=CANDLES_MAX_AGE, severity=dg.AssetCheckSeverity.ERROR)
    candles_freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=candles_freshness_checks, name="candles_freshness_sensor",
        minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
