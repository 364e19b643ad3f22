from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from nettrace_dagster.market.schema import candle_problems, gap_report
from nettrace_dagster.market.sim import SIM_ANCHOR, SIM_START, SimSource, bars_between, simulate
from nettrace_dagster.settings import SettingsError, load_settings

NOW = datetime(2026, 12, 1, 16, 30, 20, tzinfo=UTC)


def at(t: datetime):
    return lambda: t


def test_same_seed_same_bars() -> None:
    a, b = simulate("BTC-USDT", 5000, seed=3), simulate("BTC-USDT", 5000, seed=3)
    assert a.equals(b)
    assert not a.equals(simulate("BTC-USDT", 5000, seed=4))
    assert not a["close"].equals(simulate("ETH-USDT", 5000, seed=3)["close"])


def test_bars_are_valid_regular_and_record_every_regime() -> None:
    df = simulate("SOL-USDT", 10_080, seed=7)
    assert candle_problems(df) == []
    assert gap_report(df, 60) == (0, 0.0)
    assert set(df["true_regime"].unique()) == {"BULL", "BEAR", "SIDEWAYS"}


def test_source_is_incremental() -> None:
    src = SimSource(seed=7, bars=2000, clock=at(NOW))
    first = src.fetch("BTC-USDT", None)
    since = first["timestamp"][1499]
    rest = src.fetch("BTC-USDT", since)
    assert rest.height == 500 and rest["timestamp"].min() == since + timedelta(minutes=1)
    assert src.fetch("BTC-USDT", first["timestamp"].max()).height == 0
    assert pl.concat([first.head(1500), rest]).equals(first)


def test_bars_up_to_now_are_stable_across_restarts_and_a_refresh_adds_exactly_the_new_ones() -> None:
    before = SimSource(seed=7, bars=3000, clock=at(NOW)).fetch("ETH-USDT", None)
    # The last closed bar opened a minute before now (16:29 closes at 16:30 ≤ 16:30:20).
    assert before["timestamp"].max() == datetime(2026, 12, 1, 16, 29, tzinfo=UTC) and before.height == 3000
    later = SimSource(seed=7, bars=3000, clock=at(NOW + timedelta(minutes=7, seconds=30)))  # a restart, later
    after = later.fetch("ETH-USDT", None)
    overlap = before.join(after, on="timestamp", how="inner", suffix="_after")
    assert overlap.height == 3000 - 7
    for col in ("open", "high", "low", "close", "volume", "true_regime"):
        assert overlap[col].equals(overlap[f"{col}_after"].alias(col)), col
    new = later.fetch("ETH-USDT", before["timestamp"].max())
    assert new.height == 7 and new["timestamp"].min() == before["timestamp"].max() + timedelta(minutes=1)
    assert pl.concat([before, new]).tail(3000).equals(after)
    assert later.fetch("ETH-USDT", after["timestamp"].max()).height == 0  # nothing new: nothing fetched


def test_a_bar_is_a_function_of_its_time_not_of_the_window_it_was_asked_in() -> None:
    far = 400_000  # months after SIM_START, crossing many regime segments
    window = bars_between("BTC-USDT", far, far + 5000, seed=7)
    assert window.equals(bars_between("BTC-USDT", far - 3000, far + 6000, seed=7).slice(3000, 5000))
    assert window["timestamp"][0] == SIM_START + timedelta(minutes=far)
    assert candle_problems(window) == [] and gap_report(window, 60) == (0, 0.0)
    assert set(window["true_regime"].unique()) <= {"BULL", "BEAR", "SIDEWAYS"}
    # Each bar opens at the previous close, across segment boundaries too.
    assert (window["open"].slice(1) - window["close"].slice(0, window.height - 1)).abs().max() < 1e-9


def test_speed_multiplies_time_from_a_fixed_anchor() -> None:
    real = SIM_ANCHOR + timedelta(seconds=90)
    fast = SimSource(bars=100, speed=60, clock=at(real)).fetch("SOL-USDT", None)
    assert fast["timestamp"].max() == SIM_ANCHOR + timedelta(minutes=89)  # 90 s x 60 = 90 simulated minutes
    slow = SimSource(bars=100, speed=1, clock=at(real)).fetch("SOL-USDT", None)
    assert slow["timestamp"].max() == SIM_ANCHOR  # the bar 00:00 closed at 00:01
    # Same market whatever the speed: the bars both hold are the same bars.
    assert fast.filter(pl.col("timestamp") <= SIM_ANCHOR).tail(10).equals(slow.tail(10))


def test_sim_speed_setting_is_bounded() -> None:
    assert load_settings({}).nettrace_sim_speed == 1
    assert load_settings({"NETTRACE_SIM_SPEED": "60"}).nettrace_sim_speed == 60
    with pytest.raises(SettingsError, match="NETTRACE_SIM_SPEED"):
        load_settings({"NETTRACE_SIM_SPEED": "0"})
