"""The market assets under Dagster: idempotent candles, blocking checks, regimes, DuckDB summary."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.market import candles, market_summary, regimes
from nettrace_dagster.market.lake import Lake
from nettrace_dagster.market.quality import inspect_candles
from nettrace_dagster.market.sim import SimSource, simulate
from nettrace_dagster.resources import MarketDataResource, build_resources
from nettrace_dagster.settings import Settings


class ScriptedSource:
    """Returns a fixed frame: lets a test feed the asset data the checks must catch."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def fetch(self, symbol: str, since: datetime | None) -> pl.DataFrame:
        return self.frame if since is None else self.frame.filter(pl.col("timestamp") > since)


class ScriptedMarket(MarketDataResource):
    frame_path: str

    def client(self, progress=None, api_budget=None) -> ScriptedSource:
        return ScriptedSource(pl.read_parquet(self.frame_path))


class ClockedSim(MarketDataResource):
    """The sim source with a fixed real "now": a test decides when bars arrive."""

    now_iso: str

    def client(self, progress=None, api_budget=None) -> SimSource:
        return SimSource(seed=self.sim_seed, bars=self.sim_bars, clock=lambda: datetime.fromisoformat(self.now_iso))


NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def clocked(settings: Settings, now: datetime, bars: int = 3000) -> ClockedSim:
    return ClockedSim(source="sim", lake_dir=str(settings.lake_dir), sim_bars=bars, now_iso=now.isoformat())


def resources(settings: Settings, **overrides) -> dict:
    return {**build_resources(settings), **overrides}


def test_candles_idempotent_and_incremental(settings: Settings) -> None:
    res = resources(settings, market=clocked(settings, NOW))
    result = dg.materialize([candles, regimes], partition_key="BTC-USDT", resources=res)
    mat = result.asset_materializations_for_node("candles")[0]
    assert mat.metadata["new_rows"].value == 3000 and mat.metadata["rows"].value == 3000
    regime_mat = result.asset_materializations_for_node("regimes")[0]
    assert regime_mat.metadata["current_regime"].value in ("BULL", "BEAR", "SIDEWAYS")
    assert "data:image/png;base64," in regime_mat.metadata["chart"].value
    again = dg.materialize([candles, regimes], partition_key="BTC-USDT", resources=res)
    assert again.success and again.asset_materializations_for_node("candles") == []
    stored = Lake(settings.lake_dir).read_candles("BTC-USDT")
    assert stored["timestamp"].n_unique() == 3000


def _candle_versions(instance: dg.DagsterInstance, node: str = "candles") -> list[str]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(node), asset_partitions=["BTC-USDT"]), limit=100).records
    return [r.asset_materialization.tags["dagster/data_version"] for r in reversed(records)]


def test_a_refresh_with_nothing_new_writes_nothing_and_keeps_the_data_version(settings: Settings) -> None:
    instance = dg.DagsterInstance.ephemeral()

    def refresh(now: datetime) -> dg.ExecuteInProcessResult:
        return dg.materialize([candles, regimes], partition_key="BTC-USDT", instance=instance,
                              resources=resources(settings, market=clocked(settings, now)))

    refresh(NOW)
    first = _candle_versions(instance)
    assert first == [f"{datetime(2026, 12, 1, 11, 59, tzinfo=UTC).isoformat()}/3000"]
    files = {p: p.stat().st_mtime_ns for p in Path(settings.lake_dir).rglob("*.parquet")}
    quiet = refresh(NOW + timedelta(seconds=20))  # the next bar has not closed yet
    assert quiet.success and quiet.asset_materializations_for_node("candles") == []
    assert quiet.asset_materializations_for_node("regimes") == []  # downstream does not rebuild
    assert _candle_versions(instance) == first and len(_candle_versions(instance, "regimes")) == 1
    assert {p: p.stat().st_mtime_ns for p in Path(settings.lake_dir).rglob("*.parquet")} == files
    moved = refresh(NOW + timedelta(minutes=3))  # three bars closed
    assert moved.asset_materializations_for_node("candles")[0].metadata["new_rows"].value == 3
    assert _candle_versions(instance) == [*first, f"{datetime(2026, 12, 1, 12, 2, tzinfo=UTC).isoformat()}/3003"]
    assert Lake(settings.lake_dir).read_candles("BTC-USDT").height == 3003


def _bad_frames() -> dict[str, pl.DataFrame]:
    good = simulate("BTC-USDT", 500, 7)
    return {
        "sorted_unique": pl.concat([good.head(300), good.slice(250, 250)]),
        "gaps": good.filter(pl.int_range(pl.len()) % 10 != 5),
        "ohlc_sane": good.with_columns(pl.when(pl.int_range(pl.len()) == 42).then(-1.0).otherwise(pl.col("low"))
                                       .alias("low")),
        "no_nan": good.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(float("nan"))
                                    .otherwise(pl.col("close")).alias("close")),
    }


@pytest.mark.parametrize("check", ["sorted_unique", "gaps", "ohlc_sane", "no_nan"])
def test_each_check_fails_on_the_data_it_guards(check: str) -> None:
    outcomes = {o.name: o for o in inspect_candles(_bad_frames()[check], 60, 0.01)}
    assert not outcomes[check].passed and outcomes[check].description
    good = {o.name: o for o in inspect_candles(simulate("BTC-USDT", 500, 7), 60, 0.01)}
    assert set(good) == {"sorted_unique", "gaps", "ohlc_sane", "no_nan"}
    assert all(o.passed for o in good.values())


@pytest.mark.parametrize("check", ["sorted_unique", "gaps", "ohlc_sane", "no_nan"])
def test_bad_candles_block_regimes_in_the_same_run(settings: Settings, tmp_path: Path, check: str) -> None:
    frame_path = tmp_path / "frame.parquet"
    _bad_frames()[check].write_parquet(frame_path)
    market = ScriptedMarket(source="sim", lake_dir=str(settings.lake_dir), frame_path=str(frame_path))
    result = dg.materialize([candles, regimes], partition_key="BTC-USDT",
                            resources=resources(settings, market=market), raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations[check].passed
    assert evaluations[check].description.startswith("BTC-USDT: ")  # which symbol failed, in words
    assert evaluations[check].metadata["symbol"].value == "BTC-USDT"  # … and in the metadata
    assert result.asset_materializations_for_node("regimes") == []  # blocked downstream
    assert not any(e.step_key == "regimes" and e.is_step_success for e in result.all_events)
    assert result.asset_materializations_for_node("candles") == []  # bad bars are not stored ...
    assert not Lake(settings.lake_dir).exists("candles", "BTC-USDT")
    quarantined = list((settings.lake_dir / "_quarantine" / "candles").glob("BTC-USDT-*.parquet"))
    assert len(quarantined) == 1 and pl.read_parquet(quarantined[0]).height > 0  # ... nor lost
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "blocking asset check failed" in failure.step_failure_data.error.message


def test_summary_is_computed_by_duckdb_over_the_lake(settings: Settings) -> None:
    res = resources(settings, market=MarketDataResource(source="sim", lake_dir=str(settings.lake_dir), sim_bars=1000))
    for symbol in ("BTC-USDT", "ETH-USDT"):
        dg.materialize([candles, regimes], partition_key=symbol, resources=res)
    result = dg.materialize([market_summary], resources=res)
    assert result.success
    df = Lake(settings.lake_dir).read("market_summary")
    assert df["symbol"].to_list() == ["BTC-USDT", "ETH-USDT"] and df["bars"].to_list() == [1000, 1000]


def test_file_source_failure_is_one_clean_message(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "BTC-USDT.csv").write_text("timestamp,open,high,low,close,volume\n1704067200,1,2,0.5,abc,1\n")
    market = MarketDataResource(source="file", lake_dir=str(settings.lake_dir), import_dir=str(tmp_path))
    result = dg.materialize([candles], partition_key="BTC-USDT", resources=resources(settings, market=market),
                            raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "non-numeric value 'abc' in column close" in failure.step_failure_data.user_failure_data.description
    assert not Lake(settings.lake_dir).exists("candles", "BTC-USDT")


def test_candles_from_a_loopback_exchange_through_ccxt(settings: Settings) -> None:
    from tests.fakes.binance import FakeBinance

    with FakeBinance(now=None) as fake:  # follows the wall clock, as the source's "now" does
        market = MarketDataResource(source="ccxt", lake_dir=str(settings.lake_dir), ccxt_history_days=1,
                                    ccxt_base_url=fake.base_url, ccxt_max_retries=2)
        res = resources(settings, market=market)
        first = dg.materialize([candles], partition_key="ETH-USDT", resources=res)
        rows = first.asset_materializations_for_node("candles")[0].metadata["rows"].value
        assert 1430 <= rows <= 1441  # a day of closed 1-minute bars, over two pages
        evaluations = first.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {"sorted_unique", "gaps", "ohlc_sane", "no_nan"}
        assert all(e.passed for e in evaluations)
        budget = res["execution"].coordinator().snapshot()["api_calls"]["binance"]
        assert budget["minute"] >= 2  # every page counted against the shared exchange budget
        fake.fail_next("/api/v3/klines", status=429)  # retried, not fatal
        again = dg.materialize([candles], partition_key="ETH-USDT", resources=res)
        mats = again.asset_materializations_for_node("candles")  # none when no bar closed in between
        new_rows = mats[0].metadata["new_rows"].value if mats else 0
        assert again.success and new_rows <= 2  # only what closed in between
        fake.fail_next("/api/v3/klines", status=503, times=5)
        failed = dg.materialize([candles], partition_key="SOL-USDT", resources=res, raise_on_error=False)
        failure = next(e for e in failed.all_events if e.is_step_failure)
        assert "gave up after 2 tries" in failure.step_failure_data.user_failure_data.description
    lake = Lake(settings.lake_dir)
    stored = lake.read_candles("ETH-USDT")
    assert stored.height == rows + new_rows and stored["timestamp"].is_unique().all()
    assert not lake.exists("candles", "SOL-USDT")


def test_bad_new_bars_leave_the_stored_history_untouched(settings: Settings, tmp_path: Path) -> None:
    good = simulate("BTC-USDT", 600, 7)
    frame_path = tmp_path / "frame.parquet"
    good.head(400).write_parquet(frame_path)
    market = ScriptedMarket(source="sim", lake_dir=str(settings.lake_dir), frame_path=str(frame_path))
    assert dg.materialize([candles], partition_key="BTC-USDT", resources=resources(settings, market=market)).success
    stored_path = Lake(settings.lake_dir).path("candles", "BTC-USDT")
    before = stored_path.read_bytes()
    bad_tail = good.with_columns(pl.when(pl.int_range(pl.len()) == 500).then(float("nan"))
                                 .otherwise(pl.col("close")).alias("close"))
    bad_tail.write_parquet(frame_path)
    result = dg.materialize([candles, regimes], partition_key="BTC-USDT",
                            resources=resources(settings, market=market), raise_on_error=False)
    assert not result.success
    assert stored_path.read_bytes() == before
    assert not {e.check_name: e for e in result.get_asset_check_evaluations()}["no_nan"].passed


def _with_nan_and_broken_bar() -> pl.DataFrame:
    """Close is NaN at row 8; row 43 has high below its open and close (an OHLC violation)."""
    row = pl.int_range(pl.len())
    return simulate("BTC-USDT", 500, 7).with_columns(
        pl.when(row == 7).then(float("nan")).otherwise(pl.col("close")).alias("close"),
        pl.when(row == 42).then(pl.col("low") * 0.99).otherwise(pl.col("high")).alias("high"))


def test_nan_rows_do_not_stop_the_ohlc_check_from_judging_the_rest() -> None:
    outcomes = {o.name: o for o in inspect_candles(_with_nan_and_broken_bar(), 60, 0.01)}
    assert not outcomes["no_nan"].passed and "row 8 " in outcomes["no_nan"].description
    assert not outcomes["ohlc_sane"].passed and "row 43 " in outcomes["ohlc_sane"].description
    assert outcomes["sorted_unique"].passed and outcomes["gaps"].passed


def test_ohlc_check_judges_the_finite_rows_and_says_how_many_it_left_out() -> None:
    only_nan = simulate("BTC-USDT", 500, 7).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise(pl.col("high")).alias("high"))
    outcomes = {o.name: o for o in inspect_candles(only_nan, 60, 0.01)}
    assert not outcomes["no_nan"].passed
    assert outcomes["ohlc_sane"].passed and "499 bar(s)" in outcomes["ohlc_sane"].description
    assert outcomes["ohlc_sane"].metadata["bars_not_judged"] == 1
    # with no finite bar there is nothing to judge: that is not a pass
    all_nan = only_nan.with_columns(pl.lit(float("nan")).alias("open"))
    outcomes = {o.name: o for o in inspect_candles(all_nan, 60, 0.01)}
    assert not outcomes["ohlc_sane"].passed and not outcomes["no_nan"].passed


def test_a_batch_with_nan_and_a_broken_bar_fails_both_checks_in_a_run(settings: Settings, tmp_path: Path) -> None:
    frame_path = tmp_path / "frame.parquet"
    _with_nan_and_broken_bar().write_parquet(frame_path)
    market = ScriptedMarket(source="sim", lake_dir=str(settings.lake_dir), frame_path=str(frame_path))
    result = dg.materialize([candles], partition_key="BTC-USDT", resources=resources(settings, market=market),
                            raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"sorted_unique", "gaps", "ohlc_sane", "no_nan"}
    assert not evaluations["no_nan"].passed and not evaluations["ohlc_sane"].passed
    assert evaluations["sorted_unique"].passed and evaluations["gaps"].passed
