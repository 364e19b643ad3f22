"""`nettrace backtest`: a CSV a new user brings, the lake, bad data, parameters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nettrace_dagster.backtest import EngineParams, run_backtest
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.cli import main
from nettrace_dagster.market.file_source import read_candle_file
from nettrace_dagster.settings import Settings
from nettrace_dagster.strategies import get_strategy
from tests.test_backtest_engine import round_trips

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
    assert code == 2 and "no such symbol in the lake" in err
    (settings.lake_dir / "candles").mkdir(parents=True)
    synthetic_candles(2_000, 3).write_parquet(settings.lake_dir / "candles" / "SOL-USDT.parquet")
    code, out, _ = backtest(capsys, "--data", "SOL-USDT", "--strategy", "mean_reversion")
    assert code == 0 and out["data"] == "lake:SOL-USDT" and out["bars"] == 2_000
    assert np.isfinite(out["sharpe"])


# ---------------------------------------------------------------- bad parameters: exit 2, one line
@pytest.mark.parametrize("params, expect", [
    ('{"fast": Infinity}', "Infinity is not a number"),
    ('{"fast": -Infinity}', "-Infinity is not a number"),
    ('{"slow": NaN}', "NaN is not a number"),
    ('{"slow": 1e400}', "slow must be a finite number"),  # JSON's own overflow to inf
    ('{"fast": 1e100}', "fast=1e+100 is outside its range [2, 100]"),
    ('{"fast": null}', "fast must be a number, got None"),
    ('{"fast": [1]}', "fast must be a number, got [1]"),
    ('{"fast": "x"}', "fast must be a number, got 'x'"),
    ('{"fast": true}', "fast must be a number, got True"),
    ('{"stop_loss": null}', "stop_loss must be a number"),
    ('{"stop_loss": Infinity}', "Infinity is not a number"),
    ('{"stop_loss": "x"}', "stop_loss must be a number"),
    ('{"take_profit": [0.01]}', "take_profit must be a number"),
    ('{"fee": 1e100}', "fee must be a fraction"),
    ('{"tp_last_closes": 1}', "tp_last_closes must be true or false"),
    ('{"min_confirmations": 2.5}', "min_confirmations must be a whole number"),
])
def test_bad_parameter_values_exit_2(params: str, expect: str, csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = backtest(capsys, "--data", str(csv), "--strategy", "sma_cross", "--params", params)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nettrace backtest: error:")
    assert expect in lines[0]


def test_a_directory_as_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in (tmp_path / "candles", tmp_path / "candles.csv"):
        folder.mkdir()
        code, _, err = backtest(capsys, "--data", str(folder), "--strategy", "sma_cross")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and f"--data {folder}: is a directory" in lines[0]


# ---------------------------------------------------------------- strategy files that misbehave
def _strategy(body: str, before: str = "") -> str:
    return f"""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy
{before}

class Mine(Strategy):
    name = "mine"
    default_params = {{}}

    def signals(self, candles, params):
        {body}
"""


GOOD = "return Signals.empty(len(candles))"
QUITS = "if len(candles):\n            raise SystemExit(0)\n        return Signals.empty(len(candles))"
# A strategy file runs only after validation, and then in the sandbox: each broken file is
# rejected (exit 1) by the layer named here, with what went wrong, on one line.
STRATEGY_FILES = {
    "syntax_error": ("def signals(:\n", "static", "syntax error"),
    "raises_at_import": (_strategy(GOOD, "raise RuntimeError('no config')"), "security", "runs code at import"),
    "exits_at_import": (_strategy(GOOD, "raise SystemExit(0)"), "security", "runs code at import"),
    "abstract": (_strategy(GOOD).replace("    def signals", "    def other"), "conventions",
                 "does not define signals"),
    "wrong_length": (_strategy("return Signals.empty(len(candles) + 3)"), "sandbox", "signals.entries has shape"),
    "nan_confidence": (_strategy("s = Signals.empty(len(candles)); s.confidence[7] = np.nan; return s"),
                       "sandbox", "signals.confidence must be finite"),
    "exits_in_signals": (_strategy(QUITS), "sandbox", "signals() called sys.exit(0)"),
    "raises_in_signals": (_strategy("return 1 / 0"), "sandbox", "signals() ZeroDivisionError: division by zero"),
    "returns_a_list": (_strategy("return [1, 2]"), "sandbox", "returned list, expected Signals"),
}


@pytest.mark.parametrize("case", sorted(STRATEGY_FILES))
def test_broken_strategy_files_are_rejected_with_one_line(case: str, csv: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    source, layer, expect = STRATEGY_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source)
    code, _, err = backtest(capsys, "--data", str(csv), "--strategy", str(path))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("nettrace backtest: "), err
    assert f"rejected by the {layer} layer" in lines[0] and expect in lines[0], lines[0]


@pytest.mark.parametrize("where", ["at import", "in signals"])
def test_sys_exit_in_a_strategy_does_not_end_the_command_with_0(where: str, csv: Path, tmp_path: Path) -> None:
    """The real console script: a strategy's sys.exit(0) used to end `nettrace backtest` silently with 0."""
    path = tmp_path / "quits.py"
    path.write_text(_strategy(QUITS) if where == "in signals" else
                    _strategy(GOOD, "raise SystemExit(0)"))
    nettrace = Path(sys.executable).with_name("nettrace")
    proc = subprocess.run([str(nettrace), "backtest", "--data", str(csv), "--strategy", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nettrace backtest: ") and str(path) in lines[0]
    assert ("runs code at import" if where == "at import" else "signals() called sys.exit(0)") in lines[0]


# ---------------------------------------------------------------- Rule 2 as the execution layer reads it
def test_tightened_rule_2_settings_gate_the_backtest(csv: Path, home: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NETTRACE_RULE_MIN_CONFIDENCE", raising=False)
    args = ("--data", str(csv), "--strategy", "momentum")
    code, default, _ = backtest(capsys, *args)
    assert code == 0 and default["rule2"]["min_confidence"] == 0.70 and default["trades"] > 0
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.99")
    code, tight, _ = backtest(capsys, *args)
    assert code == 0 and tight["rule2"]["min_confidence"] == 0.99
    signals = get_strategy("momentum").run(read_candle_file(csv))
    for out, floor in ((default, 0.70), (tight, 0.99)):  # an independent gate and fill model
        ok = signals.entries & (signals.confidence >= floor) & (signals.confirmations >= 2)
        assert out["rule2"]["entry_signals"] == signals.entries.sum() and out["rule2"]["passed"] == ok.sum()
        assert out["trades"] == round_trips(ok, signals.exits)
    assert tight["trades"] < default["trades"]
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.5")  # loosening: refused, as trading refuses it
    code, _, err = backtest(capsys, *args)
    assert code == 2 and "NETTRACE_RULE_MIN_CONFIDENCE=0.5 loosens Rule 2" in err
