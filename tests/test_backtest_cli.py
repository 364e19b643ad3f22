"""`nettrace backtest`: a CSV a new user brings, the lake, bad data, parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nettrace_dagster.backtest import EngineParams, run_backtest
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.cli import main
from nettrace_dagster.market.file_source import read_candle_file
from nettrace_dagster.settings import Settings

KEYS = {"trades", "initial_equity", "final_equity", "total_return", "sharpe", "max_drawdown", "win_rate"}


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    """What a user exports: ISO timestamps, the six columns, nothing else."""
    path = tmp_path / "BTCUSDT-1m.csv"
    synthetic_candles(5_000, 4).drop("true_regime", strict=False).write_csv(path)
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict | None, str]:
    code = main(["backtest", *args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_csv_round_trip(csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = backtest(capsys, "--data", str(csv), "--strategy", "sma_cross", "--params",
                              '{"fast": 10, "slow": 30}')
    assert code == 0 and err == ""
    assert KEYS <= set(out) and out["bars"] == 5_000 and out["timeframe"] == "1m"
    assert out["initial_equity"] == 10_000 and out["trades"] > 20
    assert out["total_return"] == pytest.approx(out["final_equity"] / 10_000 - 1)
    assert 0 <= out["max_drawdown"] < 1 and 0 <= out["win_rate"] <= 1  # fractions, not percent
    # the same numbers as the library on the same file; all-in sizing, exits on the cross down
    expected = run_backtest(read_candle_file(csv), "sma_cross", {"fast": 10, "slow": 30}).metrics
    assert out["final_equity"] == pytest.approx(expected.final_equity, rel=1e-12)
    assert out["engine"]["trade_fraction"] == 1 and out["engine"]["min_reserve"] == 0


def test_options_and_engine_params(csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = backtest(capsys, "--data", str(csv), "--strategy", "sma_cross", "--params",
                            '{"fast": 5, "slow": 20, "stop_loss": 0.004, "take_profit": 0.006}',
                            "--fee", "0.0005", "--slippage-bps", "2", "--equity", "500", "--trades")
    assert code == 0
    assert out["initial_equity"] == 500 and out["engine"]["fee"] == 0.0005 and out["engine"]["slippage_bps"] == 2
    assert out["params"] == {"fast": 5, "slow": 20}
    reasons = {t["exit_reason"] for t in out["trade_list"]}
    assert {"stop_loss", "take_profit"} <= reasons
    expected = run_backtest(read_candle_file(csv), "sma_cross", {"fast": 5, "slow": 20},
                            EngineParams(fee=0.0005, slippage_bps=2, initial_equity=500, stop_loss=0.004,
                                         tp0=0.006, tp0_fraction=1.0)).metrics
    assert out["final_equity"] == pytest.approx(expected.final_equity, rel=1e-12)


def test_human_output(csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--data", str(csv), "--strategy", "momentum"]) == 0
    assert "Sharpe" in capsys.readouterr().out


def test_parquet_and_strategy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "eth.parquet"
    synthetic_candles(3_000, 8).write_parquet(path)
    strategy = tmp_path / "mine.py"
    assert main(["strategy", "new", "--template", "crossover", "--out", str(strategy)]) == 0
    capsys.readouterr()
    code, out, _ = backtest(capsys, "--data", str(path), "--strategy", str(strategy))
    assert code == 0 and out["strategy"] == "mine" and out["bars"] == 3_000


def _bad(tmp_path: Path, name: str, df: pl.DataFrame) -> Path:
    path = tmp_path / f"{name}.csv"
    df.write_csv(path)
    return path


@pytest.mark.parametrize("problem, expect", [
    ("nan", "NaN"), ("unsorted", "not sorted"), ("missing", "missing column"), ("nonpositive", "non-positive"),
])
def test_bad_data_exits_2_with_one_line(problem: str, expect: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    df = synthetic_candles(300, 1).drop("true_regime", strict=False)
    row = pl.int_range(pl.len()) == 50
    bad = {
        "nan": df.with_columns(pl.when(row).then(float("nan")).otherwise(pl.col("close")).alias("close")),
        "unsorted": pl.concat([df.slice(100), df.head(100)]),
        "missing": df.drop("low"),
        "nonpositive": df.with_columns(pl.when(row).then(0.0).otherwise(pl.col("low")).alias("low")),
    }[problem]
    code, _, err = backtest(capsys, "--data", str(_bad(tmp_path, problem, bad)), "--strategy", "sma_cross")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and lines[0].startswith("nettrace backtest: error:")


def test_gaps_are_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = synthetic_candles(2_000, 2).drop("true_regime", strict=False)
    weekdays_only = df.filter((pl.int_range(pl.len()) // 300) % 5 != 4)  # a market that closes
    code, out, err = backtest(capsys, "--data", str(_bad(tmp_path, "gappy", weekdays_only)), "--strategy", "sma_cross")
    assert code == 0 and out["bars"] == weekdays_only.height
    assert "warning" in err and "missing bar" in err


@pytest.mark.parametrize("args, expect", [
    (["--strategy", "nope"], "unknown strategy"),
    (["--strategy", "sma_cross", "--params", "{fast: 1}"], "not valid JSON"),
    (["--strategy", "sma_cross", "--params", "[1, 2]"], "JSON object"),
    (["--strategy", "sma_cross", "--params", '{"fats": 1}'], "no parameter"),
    (["--strategy", "sma_cross", "--params", '{"stop_loss": 2}'], "stop_loss"),
    (["--strategy", "sma_cross", "--fee", "-1"], "fee"),
])
def test_bad_usage_exits_2(args: list[str], expect: str, csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = backtest(capsys, "--data", str(csv), *args)
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1


def test_symbol_in_the_lake(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = backtest(capsys, "--data", "SOL-USDT", "--strategy", "sma_cross")
    assert code == 2 and "no symbol 'SOL-USDT' in the lake" in err
    (settings.lake_dir / "candles").mkdir(parents=True)
    synthetic_candles(2_000, 3).write_parquet(settings.lake_dir / "candles" / "SOL-USDT.parquet")
    code, out, _ = backtest(capsys, "--data", "SOL-USDT", "--strategy", "mean_reversion")
    assert code == 0 and out["data"] == "lake:SOL-USDT" and out["bars"] == 2_000
    assert np.isfinite(out["sharpe"])
