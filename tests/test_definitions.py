"""The whole code location loads, what must run by default does, and stale candles show red."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time  # the freshness check reads Dagster's own clock

from assets.freshness import CANDLES_MAX_AGE, candles_freshness_checks, candles_freshness_sensor
from assets.market import candles
from nettrace_dagster.definitions import defs
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.resources import MarketDataResource, build_resources
from nettrace_dagster.settings import Settings
from tests.test_market_assets import ScriptedMarket

# Named here, not read from `defs`: a schedule or sensor that silently disappears must fail a test.
SCHEDULES = {"market_refresh_schedule"}
SENSORS = {"nettrace_automation", "candles_freshness_sensor", "trading_on_new_candles"}
BLOCKING_CANDLE_CHECKS = {"sorted_unique", "gaps", "ohlc_sane", "no_nan"}
JOBS = {"market_refresh", "analytics_refresh", "backtest_refresh", "trading_tick"}


def test_code_location_loads() -> None:
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"candles", "regimes", "market_summary", "backtests", "portfolio"} <= keys
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert JOBS <= jobs, JOBS - jobs  # the demo's runs show under these names in the UI


def test_every_asset_has_a_description() -> None:
    specs = list(defs.resolve_all_asset_specs())
    assert len(specs) >= 5
    for spec in specs:
        assert spec.description, f"{spec.key.to_user_string()} has no docstring for the UI"


def test_schedules_run_by_default() -> None:
    schedules = list(defs.schedules or [])
    assert SCHEDULES <= {s.name for s in schedules}
    for schedule in schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name


def test_sensors_run_by_default() -> None:
    sensors = list(defs.sensors or [])
    assert SENSORS <= {s.name for s in sensors}
    for sensor in sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name


def test_candle_checks_are_blocking_and_freshness_is_not() -> None:
    graph = defs.resolve_asset_graph()
    specs = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key == candles.key}
    assert {name for name, spec in specs.items() if spec.blocking} == BLOCKING_CANDLE_CHECKS
    # a stale feed is reported, but must not stop the good history from being used downstream
    assert "freshness_check" in specs and not specs["freshness_check"].blocking


def test_the_freshness_sensor_targets_the_candles_freshness_check() -> None:
    sensor = next(s for s in defs.sensors if s.name == "candles_freshness_sensor")
    targeted = sensor.asset_selection.resolve_checks(defs.resolve_asset_graph())
    assert {k.to_user_string() for k in targeted} == {"candles:freshness_check"}
    assert CANDLES_MAX_AGE.total_seconds() >= 30 * 60  # at least two missed 15-minute refreshes


# ---------------------------------------------------------------- freshness, evaluated
class Location:
    """candles and its freshness check on one instance, as the sensor would run them."""

    def __init__(self, settings: Settings, market: MarketDataResource) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.resources = {**build_resources(settings), "market": market}

    def refresh(self, symbol: str = "BTC-USDT") -> None:
        assert dg.materialize([candles], partition_key=symbol, resources=self.resources, instance=self.instance).success

    def freshness(self) -> dg.AssetCheckEvaluation:
        result = dg.materialize([candles, *candles_freshness_checks], resources=self.resources, instance=self.instance,
                                selection=dg.AssetSelection.checks(*candles_freshness_checks))
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    def sensor_tick(self) -> dg.RunRequest | dg.SkipReason:
        context = dg.build_sensor_context(instance=self.instance, definitions=dg.Definitions(
            assets=[candles], asset_checks=candles_freshness_checks, sensors=[candles_freshness_sensor],
            resources=self.resources))
        return candles_freshness_sensor(context)


@pytest.fixture
def sim_location(settings: Settings) -> Location:
    return Location(settings, MarketDataResource(source="sim", lake_dir=str(settings.lake_dir), sim_bars=500))


def test_candles_never_stored_are_not_fresh(sim_location: Location) -> None:
    evaluation = sim_location.freshness()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


def test_a_stalled_refresh_turns_the_freshness_check_red(sim_location: Location) -> None:
    tick = sim_location.sensor_tick()  # never evaluated: the sensor asks for the check
    assert isinstance(tick, dg.RunRequest) and {k.name for k in tick.asset_check_keys} == {"freshness_check"}
    sim_location.refresh()
    assert sim_location.freshness().passed
    assert isinstance(sim_location.sensor_tick(), dg.SkipReason)  # fresh: nothing to do yet
    later = time.time() + CANDLES_MAX_AGE.total_seconds() + 60  # no refresh since
    with freeze_time(later):
        assert isinstance(sim_location.sensor_tick(), dg.RunRequest)  # it could be overdue: evaluate
        stale = sim_location.freshness()
    assert not stale.passed and "overdue" in stale.description
    sim_location.refresh()  # the feed comes back
    assert sim_location.freshness().passed


def test_a_live_feed_with_only_old_bars_is_stale(settings: Settings, tmp_path: Path) -> None:
    # The exchange answers but its newest bar is from January: the run is new, the data is not.
    frame_path = tmp_path / "frame.parquet"
    simulate("BTC-USDT", 500, 7).write_parquet(frame_path)
    market = ScriptedMarket(source="ccxt", lake_dir=str(settings.lake_dir), frame_path=str(frame_path))
    location = Location(settings, market)
    location.refresh()
    evaluation = location.freshness()
    assert not evaluation.passed and "overdue" in evaluation.description


def test_every_check_and_schedule_says_what_it_is_for() -> None:
    from nettrace_dagster.definitions import defs

    repo = defs.get_repository_def()
    check_specs = [spec for node in repo.assets_defs_by_key.values() for spec in node.check_specs]
    assert check_specs and all(spec.description for spec in check_specs), \
        [spec.name for spec in check_specs if not spec.description]
    schedules = list(repo.schedule_defs)
    assert schedules and all(s.description for s in schedules), [s.name for s in schedules if not s.description]


def test_loading_the_code_location_imports_no_sdk_it_does_not_use() -> None:
    """Every code server, run launcher, daemon, Celery worker and step process imports the code
    location; anthropic, scipy.signal and matplotlib.pyplot cost ~3.8 s of CPU there and are
    imported where they are used (asking Claude, simulating a sideways stretch, drawing a chart)."""
    import subprocess
    import sys

    probe = ("import sys, nettrace_dagster.definitions; "
             "print(sorted(m for m in ('anthropic', 'scipy.signal', 'matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
