"""File import: formats a user brings, each malformed case, and that a bad file damages nothing."""

from pathlib import Path

import polars as pl
import pytest

from nettrace_dagster.cli import main
from nettrace_dagster.market.file_source import FileSource, read_candle_file
from nettrace_dagster.market.importer import import_candles
from nettrace_dagster.market.lake import Lake
from nettrace_dagster.market.schema import CandleError

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = "1704067200,100,101,99,100.5,3\n1704067260,100.5,102,100,101,4\n1704067320,101,101.5,100.2,100.8,2\n"
# Binance public data (data.binance.vision) spot klines: no header, 12 columns, ms open time.
BINANCE = (
    "1704067200000,42283.58,42298.62,42261.02,42298.61,35.92724,1704067259999,1519032.59,1327,23.14,978457.1,0\n"
    "1704067260000,42298.62,42320.00,42298.61,42320.00,21.48,1704067319999,909060.8,921,14.0,592500.0,0\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, text", [
    ("epoch_s.csv", HEADER + GOOD_ROWS),
    ("epoch_ms.csv", HEADER + GOOD_ROWS.replace("1704067200,", "1704067200000,")
     .replace("1704067260,", "1704067260000,").replace("1704067320,", "1704067320000,")),
    ("iso.csv", HEADER + "2024-01-01T00:00:00Z,100,101,99,100.5,3\n2024-01-01T00:01:00+00:00,100.5,102,100,101,4\n"
     "2024-01-01 00:02:00,101,101.5,100.2,100.8,2\n"),
    ("caps.csv", HEADER.title().replace(",", ",") + GOOD_ROWS),
])
def test_formats_agree_on_time(tmp_path: Path, name: str, text: str) -> None:
    df = read_candle_file(write(tmp_path, name, text))
    assert df["timestamp"].dt.epoch("s").to_list()[:2] == [1704067200, 1704067260]
    assert df.schema["timestamp"] == pl.Datetime("ms", "UTC")


def test_binance_kline_csv(tmp_path: Path) -> None:
    df = read_candle_file(write(tmp_path, "BTCUSDT-1m-2024-01-01.csv", BINANCE))
    assert df.height == 2 and df["close"].to_list() == [42298.61, 42320.0]
    assert df["timestamp"].dt.epoch("ms").to_list() == [1704067200000, 1704067260000]


def test_binance_microsecond_timestamps(tmp_path: Path) -> None:
    text = BINANCE.replace("1704067200000,", "1704067200000000,").replace("1704067260000,", "1704067260000000,")
    assert read_candle_file(write(tmp_path, "us.csv", text))["timestamp"].dt.epoch("s").to_list() == [1704067200, 1704067260]


def test_daily_parquet(tmp_path: Path) -> None:
    df = pl.DataFrame({"timestamp": [1704067200 + 86400 * i for i in range(3)], "open": [1.0, 2, 3],
                       "high": [2.0, 3, 4], "low": [0.5, 1, 2], "close": [2.0, 3, 3.5], "volume": [1.0, 1, 1]})
    df.write_parquet(tmp_path / "d.parquet")
    assert read_candle_file(tmp_path / "d.parquet").height == 3


@pytest.mark.parametrize("name, text, message", [
    ("missing.csv", "timestamp,open,high,low,volume\n1704067200,1,2,0.5,1\n", "missing column(s): close"),
    ("nonnum.csv", HEADER + "1704067200,1,2,0.5,abc,10\n", "non-numeric value 'abc' in column close at row 1"),
    ("unsorted.csv", HEADER + "1704067260,1,2,0.5,1.5,1\n1704067200,1,2,0.5,1.5,1\n", "timestamps not sorted"),
    ("dup.csv", HEADER + "1704067200,1,2,0.5,1.5,1\n1704067200,1,2,0.5,1.5,1\n", "duplicate timestamp"),
    ("negative.csv", HEADER + "1704067200,-1,2,-2,1.5,1\n", "non-positive price"),
    ("empty.csv", "", "empty file"),
    ("header_only.csv", HEADER, "no rows"),
    ("nan.csv", HEADER + "1704067200,1,2,0.5,NaN,1\n", "NaN"),
    ("badtime.csv", HEADER + "yesterday,1,2,0.5,1.5,1\n", "not ISO 8601 or epoch"),
    ("seconds.csv", HEADER + "1704067200,1,2,0.5,1.5,1\n1704067201,1,2,0.5,1.5,1\n", "outside 1 minute"),
    ("inverted.csv", HEADER + "1704067200,1,0.9,0.5,0.8,1\n", "low <= open,close <= high"),
    ("notes.txt.bin", "x", "expected a .csv or .parquet"),
    # Past Python's year 9999 polars panicked (a Rust crash); far years are typos anyway.
    ("huge.csv", HEADER + "99999999999999999999999,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
    ("ns_future.csv", HEADER + "99999999999999999999,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
    ("inf.csv", HEADER + "inf,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
    ("nan.csv", HEADER + "nan,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
    ("old.csv", HEADER + "1800-01-01T00:00:00,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
    ("year9999.csv", HEADER + "9999-12-31T23:59:59,1,2,0.5,1.5,1\n", "outside 1900 … 2300"),
])
def test_malformed_files_name_the_problem(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(CandleError) as err:
        read_candle_file(write(tmp_path, name, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_folder_is_not_a_candle_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(CandleError, match="is a folder"):
        read_candle_file(tmp_path / "dir.csv")


def test_import_is_all_or_nothing_and_idempotent(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    first = import_candles(write(tmp_path, "a.csv", HEADER + GOOD_ROWS), "BTC-USDT", lake)
    assert (first.new_rows, first.total_rows) == (3, 3)
    assert import_candles(tmp_path / "a.csv", "BTC-USDT", lake).new_rows == 0  # no duplicate bars
    before = lake.path("candles", "BTC-USDT").read_bytes()
    with pytest.raises(CandleError):
        import_candles(write(tmp_path, "b.csv", HEADER + "1704067380,1,2,0.5,abc,1\n"), "BTC-USDT", lake)
    assert lake.path("candles", "BTC-USDT").read_bytes() == before
    more = import_candles(write(tmp_path, "c.csv", HEADER + "1704067380,100.8,101,100,100.9,1\n"), "BTC-USDT", lake)
    assert (more.new_rows, more.total_rows) == (1, 4)


@pytest.mark.parametrize("text", ["", HEADER + "1704067200,1,2,0.5,abc,1\n", "timestamp,open\n1,2\n",
                                  HEADER + "1704067260,1,2,0.5,1.5,1\n1704067200,1,2,0.5,1.5,1\n",
                                  HEADER + "1704067200,-5,2,-6,1.5,1\n"])
def test_cli_import_exit_2_one_line_nothing_damaged(home: Path, tmp_path: Path, text: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert main(["import", str(write(tmp_path, "good.csv", HEADER + GOOD_ROWS)), "--symbol", "ETH-USDT"]) == 0
    stored = Lake(home / "lake").path("candles", "ETH-USDT")
    before = stored.read_bytes()
    capsys.readouterr()
    assert main(["import", str(write(tmp_path, "bad.csv", text)), "--symbol", "ETH-USDT"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nettrace import: error: bad.csv:") and "\n" not in err
    assert stored.read_bytes() == before


def test_file_source_reads_newer_bars_only(tmp_path: Path) -> None:
    write(tmp_path, "SOL-USDT.csv", HEADER + GOOD_ROWS)
    src = FileSource(tmp_path)
    everything = src.fetch("SOL-USDT", None)
    assert src.fetch("SOL-USDT", everything["timestamp"][0]).height == 2
    with pytest.raises(CandleError, match="no BTC-USDT.csv"):
        src.fetch("BTC-USDT", None)
