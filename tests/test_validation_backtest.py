"""`nettrace backtest --strategy FILE.py`: validated first, then computed only in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nettrace_dagster.backtest import run_backtest
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.cli import main
from nettrace_dagster.strategies import load_strategy_file
from nettrace_dagster.validation import sandbox, sandboxed

HOSTILE = Path(__file__).parent / "hostile"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "candles.parquet"
    synthetic_candles(2_000, 5).drop("true_regime", strict=False).write_parquet(path)
    return path


def test_a_file_runs_in_the_sandbox_never_in_process(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.py"
    assert main(["strategy", "new", "--template", "momentum", "--out", str(path)]) == 0
    capsys.readouterr()
    expected = run_backtest(__import__("polars").read_parquet(data), load_strategy_file(path), {"lookback": 15})
    calls: list[str] = []
    real = sandbox.run_sandbox

    def counting(*args, **kwargs):
        calls.append(kwargs.get("mode", "signals"))
        return real(*args, **kwargs)

    def no_import(*_args, **_kwargs):
        raise AssertionError("the strategy file was imported into the CLI's process")

    monkeypatch.setattr(sandbox, "run_sandbox", counting)
    monkeypatch.setattr("nettrace_dagster.validation.validate.run_sandbox", counting)
    monkeypatch.setattr(sandboxed, "run_sandbox", counting)
    monkeypatch.setattr("nettrace_dagster.strategies.registry.load_strategy_file", no_import)
    monkeypatch.setattr("nettrace_dagster.strategies.load_strategy_file", no_import)
    assert main(["backtest", "--data", str(data), "--strategy", str(path), "--params", '{"lookback": 15}',
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert calls == ["validate", "signals"]  # validation's run, then the backtest's signals
    assert out["params"]["lookback"] == 15 and out["trades"] == expected.metrics.trades
    assert out["final_equity"] == pytest.approx(expected.metrics.final_equity, rel=1e-12)


def test_bad_params_for_a_file_exit_2_before_any_data_is_read(data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.py"
    assert main(["strategy", "new", "--template", "crossover", "--out", str(path)]) == 0
    capsys.readouterr()
    assert main(["backtest", "--data", str(data), "--strategy", str(path), "--params", '{"fast": 1000}']) == 2
    assert "fast=1000 is outside its range" in capsys.readouterr().err


def test_the_hostile_file_from_the_issue_is_refused(data: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NETTRACE_EXCHANGE_API_SECRET", "never-printed-secret")
    for stem in ("env_secret", "socket_exfil", "ledger_write"):
        assert main(["backtest", "--data", str(data), "--strategy", str(HOSTILE / f"{stem}.py"), "--json"]) == 1
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert captured.out == "" and len(lines) == 1 and "rejected by the static layer" in lines[0]
        assert "never-printed-secret" not in captured.err
