"""Strategies: the protocol, the built-ins, templates and `nettrace strategy new`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from nettrace_dagster.backtest import gate_entries
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.cli import main
from nettrace_dagster.strategies import STRATEGIES, Signals, Strategy, get_strategy, load_strategy_file
from nettrace_dagster.strategies.base import crossed_above, crossed_below
from nettrace_dagster.strategies.indicators import crosses, roc, rolling_std, rsi, sma
from nettrace_dagster.strategies.templating import list_templates, render_template

CANDLES = synthetic_candles(6_000, 21, vol=0.003)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_builtin_signals_are_well_formed(name: str) -> None:
    strategy = get_strategy(name)
    assert isinstance(strategy, Strategy) and strategy.name == name
    assert set(strategy.param_space) <= set(strategy.default_params)
    s = strategy.run(CANDLES)
    n = CANDLES.height
    assert isinstance(s, Signals) and len(s) == n
    assert s.entries.dtype == np.bool_ and s.exits.dtype == np.bool_
    assert s.confidence.dtype == np.float64 and s.confirmations.dtype == np.int64
    assert 0 <= s.confidence.min() and s.confidence.max() <= 1 and s.confirmations.min() >= 0
    assert s.entries.sum() > 10 and s.exits.sum() > 10
    assert not s.entries[0] and not s.exits[0]
    assert gate_entries(s).sum() > 0  # some entries are confident enough to trade


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_lookahead(name: str) -> None:
    """A bar's signals depend only on bars up to it: cutting the future off changes nothing."""
    strategy = get_strategy(name)
    full = strategy.run(CANDLES)
    for cut in (500, 2_345, 5_999):
        part = strategy.run(CANDLES.head(cut))
        for a, b in zip(part, full, strict=True):
            np.testing.assert_array_equal(a, b[:cut])


def test_sma_cross_reference_semantics() -> None:
    s = get_strategy("sma_cross").run(CANDLES, {"fast": 10, "slow": 30})
    close = CANDLES["close"].to_numpy()
    fast, slow = sma(close, 10), sma(close, 30)
    np.testing.assert_array_equal(s.entries, crossed_above(fast, slow))
    np.testing.assert_array_equal(s.exits, crossed_below(fast, slow))
    assert (gate_entries(s) == s.entries).all()  # every cross passes Rule 2
    # entries and exits alternate
    events = np.where(s.entries, 1, 0)[s.entries | s.exits] - np.where(s.exits, 1, 0)[s.entries | s.exits]
    assert (np.diff(events) != 0).all()


def test_sweep_factory_matches_signals() -> None:
    strategy = get_strategy("sma_cross")
    sets = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}]
    make = strategy.signal_factory(CANDLES, sets)
    for p in sets:
        a, b = make(p), strategy.run(CANDLES, p)
        np.testing.assert_array_equal(a.entries, b.entries)
        np.testing.assert_array_equal(a.exits, b.exits)
        np.testing.assert_array_equal(gate_entries(a), gate_entries(b))


def test_indicators() -> None:
    x = np.array([1.0, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(sma(x, 3), [np.nan, np.nan, 2, 3, 4, 5])
    np.testing.assert_allclose(rolling_std(x, 2), [np.nan, 0.5, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(roc(x, 2), [np.nan, np.nan, 2.0, 1.0, 2 / 3, 0.5])
    assert rsi(x, 3)[-1] == 100.0 and np.isnan(rsi(x, 3)[2])
    up, down = crosses(np.array([1.0, 2, 1, 1]), np.array([1.5, 1.5, 1.5, 1.5]))
    assert up.tolist() == [False, True, False, False] and down.tolist() == [False, False, True, False]
    with pytest.raises(ValueError):
        sma(x, 0)


def test_lookup_and_parameters() -> None:
    with pytest.raises(ValueError, match="known: mean_reversion, momentum, sma_cross"):
        get_strategy("nope")
    s = get_strategy("sma_cross")
    assert s.resolve_params({"fast": 12.0}) == {"fast": 12, "slow": 30}
    with pytest.raises(ValueError, match="no parameter"):
        s.resolve_params({"fats": 3})
    with pytest.raises(ValueError, match="integer"):
        s.resolve_params({"fast": 2.5})


def test_strategies_are_pure() -> None:
    """No orders, files or network: the built-in modules import nothing of the sort."""
    import nettrace_dagster.strategies.builtin as builtin

    tree = ast.parse(Path(builtin.__file__).read_text())
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "collections", "concurrent", "typing", "numpy", "polars", "nettrace_dagster"}


@pytest.mark.parametrize("template", list_templates())
def test_templates_render_valid_strategies(template: str, tmp_path: Path) -> None:
    path = tmp_path / f"{template}_x.py"
    path.write_text(render_template(template, f"{template}_x"))
    strategy = load_strategy_file(path)
    assert strategy.name == f"{template}_x" and type(strategy).__name__ == "".join(
        p.capitalize() for p in f"{template}_x".split("_"))
    s = strategy.run(CANDLES)
    assert s.entries.sum() > 0 and 0 <= s.confidence.min() <= s.confidence.max() <= 1


def test_strategy_new_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "my_breakout.py"
    assert main(["strategy", "new", "--template", "momentum", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["strategy"] == "my_breakout" and info["class"] == "MyBreakout"
    assert load_strategy_file(out).run(CANDLES).entries.any()
    assert main(["strategy", "new", "--template", "momentum", "--out", str(out)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["strategy", "new", "--template", "momentum", "--out", str(out), "--force", "--name", "x_y"]) == 0
    assert load_strategy_file(out).name == "x_y"
    assert main(["strategy", "new", "--template", "nope", "--out", str(tmp_path / "n.py")]) == 2
    assert "unknown template" in capsys.readouterr().err
    assert main(["strategy", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in listing["strategies"]} == set(STRATEGIES) and listing["templates"] == list_templates()


def test_load_strategy_file_needs_exactly_one_class(tmp_path: Path) -> None:
    path = tmp_path / "two.py"
    path.write_text(render_template("crossover", "one_a") + "\n\nclass Other(OneA):\n    name = 'other'\n")
    with pytest.raises(ValueError, match="2 Strategy subclasses"):
        load_strategy_file(path)
    empty = tmp_path / "none.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ValueError, match="0 Strategy"):
        load_strategy_file(empty)
