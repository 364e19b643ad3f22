"""Event-driven trading: the trading sensor fires on new candles and skips otherwise, evaluated
against a real Dagster instance on which the candles asset is materialized as in production."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from assets.market import candles
from jobs.trading import trading_tick
from nettrace_dagster.settings import Settings
from sensors.trading import trading_on_new_candles
from tests.test_market_assets import clocked, resources

NOW = datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)


class Market:
    def __init__(self, settings: Settings) -> None:
        self.settings, self.instance, self.cursor = settings, dg.DagsterInstance.ephemeral(), None

    def refresh(self, now: datetime, symbol: str = "BTC-USDT") -> int:
        result = dg.materialize([candles], partition_key=symbol, instance=self.instance,
                                resources=resources(self.settings, market=clocked(self.settings, now, bars=500)))
        assert result.success
        return len(result.asset_materializations_for_node("candles"))

    def tick(self) -> dg.RunRequest | dg.SkipReason:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        outcome = trading_on_new_candles(context)
        self.cursor = context.cursor
        return outcome


def test_trading_fires_on_new_candles_and_skips_otherwise(settings: Settings) -> None:
    market = Market(settings)
    skip = market.tick()
    assert isinstance(skip, dg.SkipReason) and "no candles yet" in skip.skip_message

    assert market.refresh(NOW) == 1
    first = market.tick()
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("candles-")
    again = market.tick()  # nothing happened since
    assert isinstance(again, dg.SkipReason) and "no new candles" in again.skip_message

    assert market.refresh(NOW + timedelta(seconds=15)) == 0  # the next bar has not closed: no event
    assert isinstance(market.tick(), dg.SkipReason)

    assert market.refresh(NOW + timedelta(minutes=2)) == 1  # two bars closed
    assert market.refresh(NOW + timedelta(minutes=2), symbol="ETH-USDT") == 1
    second = market.tick()  # one tick for both symbols' new bars, not one per event
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key
    assert isinstance(market.tick(), dg.SkipReason)


def test_new_candles_wait_while_a_tick_is_running(settings: Settings) -> None:
    market = Market(settings)
    market.refresh(NOW)
    assert isinstance(market.tick(), dg.RunRequest)
    market.instance.add_run(DagsterRun(job_name=trading_tick.name, run_id="tick-in-progress",
                                       status=dg.DagsterRunStatus.STARTED))
    market.refresh(NOW + timedelta(minutes=1))
    waiting = market.tick()
    assert isinstance(waiting, dg.SkipReason) and "still running" in waiting.skip_message
    market.instance.report_run_canceled(market.instance.get_run_by_id("tick-in-progress"))
    assert isinstance(market.tick(), dg.RunRequest)  # the bars that waited are traded next
