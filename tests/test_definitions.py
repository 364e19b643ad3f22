"""The whole code location loads, and what must run by default does."""

import dagster as dg

from nettrace_dagster.definitions import defs


def test_code_location_loads() -> None:
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"candles", "regimes", "market_summary"} <= keys


def test_every_asset_has_a_description() -> None:
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, f"{spec.key.to_user_string()} has no docstring for the UI"


def test_schedules_run_by_default() -> None:
    for schedule in defs.schedules or []:
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name


def test_candle_checks_are_blocking() -> None:
    checks = [c for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key.to_user_string() == "candles"]
    assert {c.name for c in checks} == {"sorted_unique", "gaps", "ohlc_sane", "no_nan"}


def test_sensors_run_by_default() -> None:
    for sensor in defs.sensors or []:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
