"""Strategies: the protocol, the built-ins, templates and `nettrace strategy new`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from nettrace_dagster.backtest import gate_entries, sweep
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.cli import main
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies import (
    STRATEGIES,
    Signals,
    Strategy,
    StrategyError,
    get_strategy,
    load_strategy_file,
)
from nettrace_dagster.strategies.base import crossed_above, crossed_below
from nettrace_dagster.strategies.evidence import TREND, EvidenceConfig, confirm
from nettrace_dagster.strategies.indicators import crosses, roc, rolling_std, rsi, sma
from nettrace_dagster.strategies.templating import list_templates, render_template

CANDLES = synthetic_candles(6_000, 21, vol=0.003)
RULES = Rules()  # the built-in Rule 2, whatever the environment tightens


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
    assert gate_entries(s, rules=RULES).sum() > 0  # some entries are confident enough to trade


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
    # the cross is a trend trigger: the other four families score it, and Rule 2 decides
    confidence, confirmations = confirm(CANDLES, TREND, EvidenceConfig())
    np.testing.assert_array_equal(s.confirmations, confirmations)
    np.testing.assert_array_equal(s.confidence, confidence)
    passed = gate_entries(s, rules=RULES)
    assert 0 < passed.sum() < s.entries.sum()  # some crosses trade, not all of them
    # entries and exits alternate
    events = np.where(s.entries, 1, 0)[s.entries | s.exits] - np.where(s.exits, 1, 0)[s.entries | s.exits]
    assert (np.diff(events) != 0).all()


def test_sweep_factory_matches_signals() -> None:
    strategy = get_strategy("sma_cross")
    sets = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}]
    make = strategy.signal_factory(CANDLES, sets)
    for p in sets:
        a, b = make(p), strategy.run(CANDLES, p)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert gate_entries(a, rules=RULES).any()


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


@pytest.mark.parametrize("value, expect", [
    (float("inf"), "finite"), (float("nan"), "finite"), (1e100, "outside its range"), (None, "must be a number"),
    ([1], "must be a number"), ("x", "must be a number"), ("10", "must be a number"), (True, "must be a number"),
    (1, "outside its range [2, 100]"), (101, "outside its range"),
])
def test_parameters_are_finite_numbers_in_their_range(value: object, expect: str) -> None:
    with pytest.raises(ValueError, match=expect.replace("[", r"\[").replace("]", r"\]")):
        get_strategy("sma_cross").resolve_params({"fast": value})
    assert get_strategy("momentum").resolve_params({"threshold": 0.05})["threshold"] == 0.05  # bounds included
    with pytest.raises(ValueError, match="threshold=0.06 is outside its range"):
        get_strategy("momentum").resolve_params({"threshold": 0.06})


def test_strategies_are_pure() -> None:
    """No orders, files or network: the built-in modules import nothing of the sort."""
    import nettrace_dagster.strategies.builtin as builtin

    tree = ast.parse(Path(builtin.__file__).read_text())
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "collections", "concurrent", "typing", "numpy", "polars", "nettrace_dagster"}
    import nettrace_dagster.strategies.evidence as evidence

    tree = ast.parse(Path(evidence.__file__).read_text())
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "collections.abc", "dataclasses", "typing", "numba", "numpy", "polars",
                        "nettrace_dagster.regimes", "nettrace_dagster.strategies.indicators"}


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


# ---------------------------------------------------------------- user strategy code that misbehaves
BROKEN_SIGNALS = {
    "wrong_length": "return Signals.empty(len(candles) - 1)",
    # the bad values sit on entry bars, so that sweeps (which check entry bars only) see them too
    "nan_confidence": "s = Signals.empty(len(candles)); s.entries[3] = True; s.confidence[3] = np.nan; return s",
    "confidence_above_1": "s = Signals.empty(len(candles)); s.entries[3] = True; s.confidence[:] = 1.5; return s",
    "too_many_confirmations": "s = Signals.empty(len(candles)); s.entries[5] = True; s.confirmations[5] = 9; return s",
    "fractional_confirmations": ("s = Signals.empty(len(candles)); s.entries[1] = True; "
                                 "return Signals(s.entries, s.exits, s.confidence, np.full(len(candles), 2.5))"),
    "nan_entries": ("s = Signals.empty(len(candles)); "
                    "return Signals(np.full(len(candles), np.nan), s.exits, s.confidence, s.confirmations)"),
    "text_exits": ("s = Signals.empty(len(candles)); "
                   "return Signals(s.entries, np.array(['x'] * len(candles)), s.confidence, s.confirmations)"),
    "not_signals": "return None",
    "raises": "raise KeyError('close')",
    "exits_0": "import sys; sys.exit(0)",
    "exits_3": "raise SystemExit(3)",
}
EXPECT = {
    "wrong_length": "shape", "nan_confidence": "confidence must be finite", "confidence_above_1": "[0, 1]",
    "too_many_confirmations": "confirmations must be whole numbers in [0, 5]",
    "fractional_confirmations": "whole numbers", "nan_entries": "entries must be booleans",
    "text_exits": "exits must be booleans", "not_signals": "returned NoneType, expected Signals",
    "raises": "signals() KeyError: 'close'", "exits_0": "signals() called sys.exit(0)",
    "exits_3": "signals() called sys.exit(3)",
}


def strategy_file(tmp_path: Path, body: str, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(f"""
import numpy as np
from nettrace_dagster.strategies import Signals, Strategy


class Bad(Strategy):
    name = "{name}"
    default_params = {{}}

    def signals(self, candles, params):
        {body}
""")
    return path


@pytest.mark.parametrize("case", sorted(BROKEN_SIGNALS))
def test_misbehaving_signals_are_one_line_strategy_errors(case: str, tmp_path: Path) -> None:
    strategy = load_strategy_file(strategy_file(tmp_path, BROKEN_SIGNALS[case], case))
    with pytest.raises(StrategyError) as info:
        strategy.run(CANDLES.head(50))
    msg = str(info.value)
    assert EXPECT[case] in msg and msg.startswith(f"strategy '{case}': ") and "\n" not in msg
    # sweeps are guarded the same way (values checked on entry bars, by the gate)
    with pytest.raises(StrategyError) as info:
        sweep(CANDLES.head(50), strategy, [{}], workers=1, rules=RULES)
    assert str(info.value).startswith(f"strategy '{case}': ") and EXPECT[case] in str(info.value)


BROKEN_FILES = {
    "syntax": ("def broken(:\n", "syntax error"),
    "raises_at_import": ("import nonexistent_module_xyz\n", "importing it raised ModuleNotFoundError"),
    "exits_at_import": ("import sys\nsys.exit(0)\n", "importing it called sys.exit(0)"),
    "abstract": ("from nettrace_dagster.strategies import Strategy\n\nclass A(Strategy):\n    name = 'a'\n",
                 "does not implement signals() (it is abstract)"),
    "bad_space": ("from nettrace_dagster.strategies import Signals, Strategy\n\nclass A(Strategy):\n"
                  "    name = 'a'\n    default_params = {'w': 5}\n    param_space = {'w': ('int', 10, 1)}\n"
                  "    def signals(self, candles, params):\n        return Signals.empty(len(candles))\n",
                  "param_space['w']"),
    "bad_default": ("from nettrace_dagster.strategies import Signals, Strategy\n\nclass A(Strategy):\n"
                    "    name = 'a'\n    default_params = {'w': 50}\n    param_space = {'w': ('int', 1, 10)}\n"
                    "    def signals(self, candles, params):\n        return Signals.empty(len(candles))\n",
                    "default_params are not valid"),
    "bad_family": ("from nettrace_dagster.strategies import Signals, Strategy\n\nclass A(Strategy):\n"
                   "    name = 'a'\n    trigger_family = 'astrology'\n"
                   "    def signals(self, candles, params):\n        return Signals.empty(len(candles))\n",
                   "trigger_family 'astrology'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_broken_strategy_files_are_one_line_strategy_errors(case: str, tmp_path: Path) -> None:
    source, expect = BROKEN_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source)
    with pytest.raises(StrategyError) as info:
        load_strategy_file(path)
    msg = str(info.value)
    assert expect in msg and str(path) in msg and "\n" not in msg


def test_a_directory_is_not_a_strategy_file(tmp_path: Path) -> None:
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(StrategyError, match="is a directory"):
        load_strategy_file(tmp_path / "pkg.py")
    with pytest.raises(FileNotFoundError):
        load_strategy_file(tmp_path / "missing.py")


def test_keyboard_interrupt_is_not_swallowed(tmp_path: Path) -> None:
    strategy = load_strategy_file(strategy_file(tmp_path, "raise KeyboardInterrupt", "ctrl_c"))
    with pytest.raises(KeyboardInterrupt):
        strategy.run(CANDLES.head(50))
