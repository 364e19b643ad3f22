"""One symbol validator everywhere a symbol comes from a user, and no mixed timeframes in a series
(issue 7, item 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace_dagster.cli import main
from nettrace_dagster.market.importer import load_candles_arg
from nettrace_dagster.market.lake import Lake, LakeError
from nettrace_dagster.market.schema import CandleError
from nettrace_dagster.market.symbols import SymbolError, parse_symbol, parse_symbol_list
from nettrace_dagster.settings import SettingsError, load_settings

HEADER = "timestamp,open,high,low,close,volume\n"
MINUTES = HEADER + "".join(f"{1704067200 + 60 * i},100,101,99,100.5,3\n" for i in range(5))
HOURS = HEADER + "".join(f"{1704085200 + 3600 * i},100,101,99,100.5,3\n" for i in range(5))
BAD_SYMBOLS = ["..", ".", "../../etc", "BTC/USDT", "BTC-USDT/..", "BTC\tUSDT", "BTC-USDT\n", "BTC-\nUSDT", "",
               " ", "BTC", "BTC--USDT", "-USDT", "BTC-", "BTC-USDT-PERP", "BTC_USDT", "B" * 21 + "-USDT", "€-USDT"]


@pytest.mark.parametrize("raw", BAD_SYMBOLS)
def test_bad_symbols_are_refused(raw: str) -> None:
    with pytest.raises(SymbolError) as err:
        parse_symbol(raw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("raw, canonical", [("BTC-USDT", "BTC-USDT"), ("btc-usdt", "BTC-USDT"),
                                            (" 1000SHIB-USDT ", "1000SHIB-USDT"), ("ETH-BTC", "ETH-BTC")])
def test_good_symbols_are_canonical(raw: str, canonical: str) -> None:
    assert parse_symbol(raw) == canonical


def test_symbol_lists() -> None:
    assert parse_symbol_list("BTC-USDT,eth-usdt,") == ["BTC-USDT", "ETH-USDT"]
    for raw in ("", ",", "BTC-USDT,btc-usdt", "BTC-USDT,.."):
        with pytest.raises(SymbolError):
            parse_symbol_list(raw)


@pytest.mark.parametrize("raw", BAD_SYMBOLS[:8])
def test_the_same_rule_for_every_source(raw: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NETTRACE_SYMBOLS"):
        load_settings({"NETTRACE_SYMBOLS": f"BTC-USDT,{raw}"})
    with pytest.raises(CandleError):  # the backtest's SYMBOL argument, when it is no file
        load_candles_arg(raw, Lake(tmp_path / "lake"))


@pytest.mark.parametrize("raw", ["..", "../x", "a/b", "x\ny", "", "_quarantine/../.."])
def test_lake_paths_stay_in_the_lake(raw: str, tmp_path: Path) -> None:
    with pytest.raises(LakeError):
        Lake(tmp_path / "lake").path("candles", raw)


@pytest.mark.parametrize("symbol", ["..", "../../escape", "BTC\tUSDT", "BTC-USDT\nETH-USDT", "x/..", ""])
def test_import_refuses_bad_symbols_and_writes_nothing(home: Path, tmp_path: Path, symbol: str,
                                                       capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(MINUTES)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["import", str(csv), "--symbol", symbol]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nettrace import: error: symbol ")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_import_canonicalises_the_symbol(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(MINUTES)
    assert main(["import", str(csv), "--symbol", "btc-usdt"]) == 0
    assert [p.name for p in (home / "lake" / "candles").iterdir()] == ["BTC-USDT.parquet"]


@pytest.mark.parametrize("first, second, needle", [
    (MINUTES, HOURS, "holds 1h bars, but BTC-USDT is stored as 1m bars"),
    (HOURS, MINUTES, "holds 1m bars, but BTC-USDT is stored as 1h bars"),
])
def test_import_refuses_another_timeframe(home: Path, tmp_path: Path, first: str, second: str, needle: str,
                                          capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.csv").write_text(first)
    (tmp_path / "b.csv").write_text(second)
    assert main(["import", str(tmp_path / "a.csv"), "--symbol", "BTC-USDT"]) == 0
    stored = home / "lake" / "candles" / "BTC-USDT.parquet"
    before = stored.read_bytes()
    capsys.readouterr()
    assert main(["import", str(tmp_path / "b.csv"), "--symbol", "BTC-USDT"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert stored.read_bytes() == before
    assert main(["import", str(tmp_path / "b.csv"), "--symbol", "BTC-USDC"]) == 0  # another series is fine
