"""CLI polish: status says when no strategy may enter and why; every option has help; human
output is aligned text, never a Python dict; progress only on a terminal."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from nettrace_dagster.cli import build_parser, main
from nettrace_dagster.settings import load_settings


def _fire(names: list[str]) -> None:
    from nettrace_dagster.execution.risk import gate_from_settings
    from nettrace_dagster.ledger.models import StrategyState

    gate = gate_from_settings(load_settings())
    gate.status()  # the account exists
    with gate.ledger.tx() as s:
        for name in names:
            s.merge(StrategyState(account=gate.account, strategy=name, status="fired",
                                  reason="win rate below the fire threshold", updated_at=time.time()))


def _status(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["status", *extra]) == 0
    return capsys.readouterr().out


def test_status_says_no_strategy_may_enter_when_all_are_fired(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.strategies import params_in_force

    fresh = json.loads(_status(capsys, "--json"))["rules"]
    assert fresh["strategies_may_enter"] is True and fresh["entries_allowed"] is True

    names = sorted(params_in_force())
    _fire(names[:-1])
    some = json.loads(_status(capsys, "--json"))["rules"]
    assert some["strategies_may_enter"] is True and some["strategies_fired"] == names[:-1]

    _fire(names)
    rules = json.loads(_status(capsys, "--json"))["rules"]
    assert rules["strategies_may_enter"] is False
    reason = f"no strategy may enter: all {len(names)} fired (Rule 3)"
    assert reason in rules["blocked_by"]
    text = _status(capsys)
    assert reason in text
    assert "allowed" not in text.split("entries", 1)[1].splitlines()[0]


def test_status_human_output_is_aligned_text(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _status(capsys)
    assert "{" not in text and "}" not in text
    labelled = [ln for ln in text.splitlines() if ln and not ln.startswith(" ")]
    starts = {len(ln) - len(ln.split("  ", 1)[1].lstrip()) for ln in labelled if "  " in ln}
    assert len(starts) == 1, text  # every value starts in the same column


def test_sql_prints_an_aligned_table(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1 AS n, 'BTC-USDT' AS symbol UNION ALL SELECT 22, 'ETH'"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["n", "symbol"]
    assert lines[1].split() == ["1", "BTC-USDT"] and lines[2].split() == ["22", "ETH"]
    assert lines[1].index("BTC-USDT") == lines[2].index("ETH")  # columns line up
    assert not any(ch in "".join(lines) for ch in "┌│╞")  # not polars' box drawing


def _actions(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_of_every_command_has_help() -> None:
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}"
               for path, a in _actions(build_parser(), "nettrace") if not (a.help and a.help.strip())]
    assert not missing, missing


GOOD = "timestamp,open,high,low,close,volume\n1704067200,100,101,99,100.5,3\n1704067260,100.5,102,100,101,4\n"


@pytest.mark.parametrize(("tty", "flags", "shown"), [(True, [], True), (True, ["--json"], False), (False, [], False)])
def test_a_big_import_shows_progress_only_on_a_terminal(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tty: bool,
                                                        flags: list[str], shown: bool) -> None:
    monkeypatch.setattr("nettrace_dagster.cli.market.BIG_IMPORT_BYTES", 1)  # this small file counts as big
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    data = tmp_path / "bars.csv"
    data.write_text(GOOD)
    assert main(["import", str(data), "--symbol", "BTC-USDT", *flags]) == 0
    out, err = capsys.readouterr()
    assert ("importing" in err) is shown and "importing" not in out
    if flags:
        json.loads(out)  # --json: one document, nothing else


def test_strategy_list_is_an_aligned_table(capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.strategies import STRATEGIES

    assert main(["strategy", "list"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out
    rows = [ln for ln in out.splitlines() if ln.strip().split(" ", 1)[0] in STRATEGIES]
    assert len(rows) == len(STRATEGIES)
    header = next(ln for ln in out.splitlines() if ln.strip().startswith("name"))
    for row in rows:  # every description starts in the header's column
        name = row.split()[0]
        assert row.index(STRATEGIES[name].description) == header.index("description"), out


def test_backtest_human_output_is_aligned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.backtest.synthetic import synthetic_candles

    path = tmp_path / "btc.parquet"
    synthetic_candles(600, 3).write_parquet(path)
    assert main(["backtest", "--data", str(path), "--strategy", "momentum"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    labels = ("bars", "entry signals", "trades", "equity", "risk")
    assert [ln.split("  ")[1].strip() for ln in lines] == list(labels)
    assert len({len(ln) - len(ln[2:].split("  ", 1)[1].lstrip()) for ln in lines}) == 1  # values in one column
