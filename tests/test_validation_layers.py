"""The six validation layers: every hostile file in tests/hostile is rejected by the layer named
here; the templates (`nettrace strategy new` output) and the built-in strategies always pass."""

from __future__ import annotations

import ast
import inspect
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nettrace_dagster.cli import main
from nettrace_dagster.strategies import STRATEGIES, builtin
from nettrace_dagster.strategies.templating import list_templates
from nettrace_dagster.validation import LAYERS, UnusableInput, validate_file

HOSTILE = Path(__file__).parent / "hostile"
# Which layer stops each hostile file (the first that fails: later layers never run).
EXPECTED = {
    "builtins_name": "security", "builtins_walk": "security", "class_body": "security",
    "constant_confidence": "integration", "cpu_loop": "integration", "decorator": "security",
    "default_arg": "security", "encoded_base64": "static", "encoded_bytes": "security", "encoded_rot13": "static",
    "env_name": "security", "env_secret": "static", "fork_bomb": "static", "format_walk": "security",
    "frame_walk": "security", "getattr_hidden": "security", "guard_override": "integration",
    "huge_write": "security", "importlib_trick": "static", "kill_others": "static", "ledger_write": "static",
    "memory_bomb": "integration", "metaclass": "security", "module_level_code": "security",
    "monkeypatch": "security", "np_attr_module": "security", "numpy_ctypes": "security", "pandas_write": "security",
    "polars_files": "security", "raw_device": "static", "relative_import": "static", "secret_in_code": "security",
    "setsid_escape": "static", "shadows_builtin": "conventions", "socket_exfil": "static",
    "string_building": "security", "subclasses_walk": "security", "subprocess_escape": "static",
    "sys_modules": "static", "type_hints_eval": "security", "vars_globals": "security",
}


def test_the_corpus_is_the_expected_one() -> None:
    files = {p.stem for p in HOSTILE.glob("*.py")}
    assert len(files) >= 40 and files == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_every_hostile_file_is_rejected_by_its_layer(stem: str) -> None:
    report = validate_file(HOSTILE / f"{stem}.py")
    assert not report.passed and report.status == "rejected"
    failed = report.failed_layer
    assert failed is not None and failed.name == EXPECTED[stem] and failed.errors, report.to_json()
    # stops at the first failure: the failing layer is the last one that ran, in the fixed order
    assert [layer.name for layer in report.layers] == list(LAYERS[:LAYERS.index(failed.name) + 1])
    assert "sandbox" not in [layer.name for layer in report.layers] or failed.name == "sandbox"


def test_a_secret_is_never_echoed_in_the_report() -> None:
    report = validate_file(HOSTILE / "secret_in_code.py")
    assert "Zq8xT2vLk9PmW4rYc7NbH3sJd6FgA1eQ0uVoXiRt" not in report.to_json()
    assert "api_secret holds a literal string" in report.to_json()


def _builtin_file(cls: type, folder: Path) -> Path:
    """A built-in strategy as its own file: builtin.py's imports and helpers, and the one class."""
    source = inspect.getsource(builtin)
    tree = ast.parse(source)
    keep = [ast.get_source_segment(source, n) for n in tree.body
            if isinstance(n, ast.Import | ast.ImportFrom | ast.FunctionDef)
            or (isinstance(n, ast.ClassDef) and n.name == cls.__name__)]
    path = folder / f"{cls.name}_file.py"
    body = "\n\n\n".join(s for s in keep if s).replace(f'name = "{cls.name}"', f'name = "{cls.name}_copy"')
    path.write_text(body + "\n")
    return path


def test_templates_and_builtins_pass_all_six_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for template in list_templates():
        out = tmp_path / f"my_{template}.py"
        assert main(["strategy", "new", "--template", template, "--out", str(out)]) == 0
        files.append(out)
    files += [_builtin_file(cls, tmp_path) for cls in STRATEGIES.values()]
    assert len(files) == len(list_templates()) + len(STRATEGIES) >= 6
    with ThreadPoolExecutor(2) as pool:  # each validation is its own sandbox process
        reports = list(pool.map(validate_file, files))
    for report in reports:
        assert report.passed and report.status == "validated", report.to_json()
        assert [layer.name for layer in report.layers] == list(LAYERS)
        assert report.strategy and report.strategy["default_params"]


def test_warnings_mean_manual_review(tmp_path: Path) -> None:
    """Passing with warnings (here: scores not from the evidence families) is in_review, not validated."""
    path = tmp_path / "own_scores.py"
    path.write_text((HOSTILE / "constant_confidence.py").read_text()
                    .replace("np.ones(n), np.full(n, 4)", "confidence, confirmations")
                    .replace("        return Signals(", "        confidence = np.clip(np.abs(np.diff(np.log(candles['close'].to_numpy()), prepend=0.0)) * 100, 0, 1)\n"
                             "        confirmations = (confidence > 0.5).astype(np.int64) * 2\n        return Signals(")
                    .replace('"""Hostile to Rule 2: vouches', '"""Scores its own entries: vouches'))
    report = validate_file(path)
    assert report.passed and report.status == "in_review", report.to_json()
    assert any("evidence families" in w for w in report.warnings)


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing.py", "no such file"),
    (lambda p: p, "is a directory"),
    (lambda p: (p / "latin1.py").write_bytes(b"# caf\xe9\n") and p / "latin1.py", "not UTF-8"),
    (lambda p: (p / "empty.py").write_text("  \n") and p / "empty.py", "is empty"),
])
def test_unusable_input_is_not_a_report(make, needle: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path)
    with pytest.raises(UnusableInput, match=needle):
        validate_file(path)
    assert main(["validate", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and needle in captured.err


def test_cli_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(HOSTILE / "getattr_hidden.py"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is False and [layer["name"] for layer in out["layers"]] == ["static", "security"]
    assert set(out["layers"][1]) >= {"name", "passed", "errors", "warnings"} and out["layers"][1]["errors"]
    good = tmp_path / "good.py"
    assert main(["strategy", "new", "--template", "momentum", "--out", str(good)]) == 0
    capsys.readouterr()
    assert main(["validate", str(good)]) == 0
    human = capsys.readouterr().out
    assert "passed all 6 layers" in human and human.count("ok  ") == 6
