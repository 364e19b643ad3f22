from datetime import timedelta

import polars as pl

from nettrace_dagster.market.schema import candle_problems, gap_report
from nettrace_dagster.market.sim import SimSource, simulate


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
    src = SimSource(seed=7, bars=2000)
    first = src.fetch("BTC-USDT", None)
    since = first["timestamp"][1499]
    rest = src.fetch("BTC-USDT", since)
    assert rest.height == 500 and rest["timestamp"].min() == since + timedelta(minutes=1)
    assert src.fetch("BTC-USDT", first["timestamp"].max()).height == 0
    assert pl.concat([first.head(1500), rest]).equals(first)
