"""Bad input is exit 2 and one line on stderr, never a traceback, and changes nothing (issue 7, item 12).

Most cases run `main()` in-process (fast); the ones where a traceback or a Rust panic would be
printed past Python run the real `nettrace` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace_dagster.cli import is_input_error, main
from nettrace_dagster.ledger.db import Ledger, LedgerError, open_ledger
from nettrace_dagster.market.file_source import FileSource, read_candle_file
from nettrace_dagster.market.schema import CandleError

NETTRACE = Path(sys.executable).with_name("nettrace")
HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = "1704067200,100,101,99,100.5,3\n1704067260,100.5,102,100,101,4\n"
HUGE_TS = HEADER + "99999999999999999999999,1,2,0.5,1.5,1\n"


def one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"nettrace {command}: error: ") and "Traceback" not in err and "panicked" not in err
    return lines[0]


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NETTRACE_HOME": str(home), **env}
    return subprocess.run([str(NETTRACE), *args], env=full, capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- nettrace import: a folder, a timestamp polars cannot hold ------------------------------------

@pytest.mark.parametrize("case", ["folder", "huge-epoch", "inf-epoch", "year-1", "parquet-year-9999"])
def test_import_bad_file_is_one_line(home: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "good.csv"
    good.write_text(HEADER + ROWS)
    assert main(["import", str(good), "--symbol", "BTC-USDT"]) == 0
    before = snapshot(home)
    bad = tmp_path / "bad.csv"
    if case == "folder":
        bad.mkdir()
    elif case == "parquet-year-9999":
        import polars as pl

        bad = tmp_path / "bad.parquet"
        pl.DataFrame({"timestamp": [253402300799000], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
                      "volume": [1.0]}).with_columns(pl.col("timestamp").cast(pl.Datetime("ms"))).write_parquet(bad)
    else:
        stamp = {"huge-epoch": "99999999999999999999999", "inf-epoch": "inf", "year-1": "0001-01-01T00:00:00"}[case]
        bad.write_text(HEADER + f"{stamp},1,2,0.5,1.5,1\n")
    capsys.readouterr()
    assert main(["import", str(bad), "--symbol", "BTC-USDT"]) == 2
    assert bad.name in one_line_error(capsys.readouterr().err, "import")
    assert snapshot(home) == before


def test_huge_timestamp_never_panics(home: Path, tmp_path: Path) -> None:
    """The polars panic printed a Rust backtrace past Python: only a real process shows it."""
    bad = tmp_path / "BTC-USDT.csv"
    bad.write_text(HUGE_TS)
    proc = run(home, "import", str(bad), "--symbol", "BTC-USDT")
    assert proc.returncode == 2
    assert "outside 1900 … 2300" in one_line_error(proc.stderr, "import")
    assert not (home / "lake").exists()
    with pytest.raises(CandleError, match="outside 1900"):  # the file source reads the same way
        FileSource(tmp_path).fetch("BTC-USDT", None)
    with pytest.raises(CandleError, match="is a folder"):
        read_candle_file(tmp_path)


# --- the ledger: bad URLs, damaged files ----------------------------------------------------------

@pytest.mark.parametrize("url, needle", [
    ("garbage", "not a database URL"),
    ("mysql://u:hunter2@127.0.0.1/db", "only sqlite and postgresql"),
    ("sqlite:///:memory:", "not memory"),
    ("sqlite://", "not memory"),
    ("postgresql://u:hunter2@127.0.0.1:1/x", "cannot be opened"),  # nothing listens on port 1
    ("postgresql+nosuchdriver://u:hunter2@127.0.0.1:1/x", "nosuchdriver"),
])
def test_bad_ledger_url_is_one_line_without_password(url: str, needle: str) -> None:
    with pytest.raises(LedgerError) as err:
        open_ledger(url)
    message = str(err.value)
    assert needle in message and "\n" not in message and "hunter2" not in message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "folder", "parent-is-file"])
def test_damaged_ledger_is_one_line_and_untouched(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "ledger.db"
    Ledger(f"sqlite:///{db}").dispose()
    for extra in tmp_path.glob("ledger.db-*"):  # WAL files: fold them away, as after a clean stop
        extra.unlink()
    if damage == "truncated":
        db.write_bytes(db.read_bytes()[:100])
    elif damage == "garbage":
        db.write_bytes(os.urandom(5000))
    elif damage == "folder":
        db.unlink()
        db.mkdir()
    else:
        db.unlink()
        db.write_text("not a folder")
        db = db / "ledger.db"
    before = snapshot(tmp_path)
    with pytest.raises(LedgerError) as err:
        Ledger(f"sqlite:///{db}")
    assert "\n" not in str(err.value) and "ledger" in str(err.value)
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.endswith(".lock")}
    assert after == {k: v for k, v in before.items() if not k.endswith(".lock")}


def test_ledger_error_maps_to_exit_2() -> None:
    # LedgerError is matched lazily (cli startup must not import SQLAlchemy): this notices a move.
    assert is_input_error(LedgerError("x"))


@pytest.mark.parametrize("url", ["garbage", "sqlite:///:memory:", "mysql://u:hunter2@127.0.0.1/db"])
def test_status_with_bad_ledger_url(home: Path, url: str, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_LEDGER_URL", url)
    assert main(["status"]) == 2
    assert "hunter2" not in one_line_error(capsys.readouterr().err, "status")


def test_status_on_a_corrupt_ledger_through_the_real_cli(home: Path) -> None:
    home.mkdir(parents=True)
    ledger = home / "ledger.db"
    ledger.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = ledger.read_bytes()
    proc = run(home, "status")
    assert proc.returncode == 2
    assert "ledger" in one_line_error(proc.stderr, "status")
    assert ledger.read_bytes() == before


# --- NETTRACE_HOME and NETTRACE_SYMBOLS, for every command that loads settings ---------------------

COMMANDS = [["status"], ["sql", "select 1"], ["import", "{csv}", "--symbol", "BTC-USDT"], ["init"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("env, needle", [
    ({"NETTRACE_HOME": "{file}"}, "is a file, not a folder"),
    ({"NETTRACE_HOME": "{file}/sub"}, "is a file, not a folder"),
    ({"NETTRACE_SYMBOLS": ""}, "NETTRACE_SYMBOLS"),
    ({"NETTRACE_SYMBOLS": " , "}, "NETTRACE_SYMBOLS"),
    ({"NETTRACE_SYMBOLS": "BTC-USDT,ETH-USDT,btc-usdt"}, "listed twice"),
    ({"NETTRACE_SYMBOLS": "BTC-USDT,../x"}, "not like BTC-USDT"),
], ids=["home-file", "home-under-file", "symbols-empty", "symbols-commas", "symbols-twice", "symbols-path"])
def test_bad_environment_is_one_line(home: Path, tmp_path: Path, command: list[str], env: dict[str, str],
                                     needle: str, capsys: pytest.CaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "passwd"
    file.write_text("root:x:0:0\n")
    csv = tmp_path / "in.csv"
    csv.write_text(HEADER + ROWS)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(file=file))
    assert main([a.format(csv=csv) for a in command]) == 2
    assert needle in one_line_error(capsys.readouterr().err, command[0])
    assert file.read_text() == "root:x:0:0\n" and not home.exists()


def test_init_when_a_state_folder_is_a_file(home: Path, capsys: pytest.CaptureFixture) -> None:
    home.mkdir(parents=True)
    (home / "lake").write_text("x")
    assert main(["init"]) == 2
    assert "lake" in one_line_error(capsys.readouterr().err, "init")
    assert (home / "lake").read_text() == "x"


# --- argparse: one line, not usage + error -------------------------------------------------------

@pytest.mark.parametrize("argv, command", [
    ([], "nettrace"), (["import"], "nettrace import"), (["sql"], "nettrace sql"),
    (["hardstop", "maybe"], "nettrace hardstop"), (["nosuch"], "nettrace"), (["status", "--nope"], "nettrace"),
])
def test_usage_errors_are_one_line(argv: list[str], command: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), lines


def test_usage_error_through_the_real_cli(home: Path) -> None:
    proc = run(home, "import")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "required: file, --symbol" in one_line_error(proc.stderr, "import")


@pytest.mark.parametrize("damage", ["ledger-url", "ledger-file", "lake-is-a-file"])
def test_demo_refuses_bad_input_before_running(home: Path, damage: str, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True)
    if damage == "ledger-url":
        monkeypatch.setenv("NETTRACE_LEDGER_URL", "postgresql://u:hunter2@127.0.0.1:1/x")
    elif damage == "ledger-file":
        (home / "ledger.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    else:
        (home / "lake").write_text("x")
    assert main(["demo"]) == 2
    assert "hunter2" not in one_line_error(capsys.readouterr().err, "demo")
    assert not (home / "dagster" / "storage").exists()  # no run started


def test_a_closed_pipe_is_not_an_error(home: Path) -> None:
    """`nettrace sql … | head -1`: the reader leaves early; no traceback, exit 0. (The output is
    far larger than a pipe's buffer, so the writer meets the closed pipe.)"""
    nettrace = Path(sys.executable).with_name("nettrace")
    env = {**os.environ, "NETTRACE_HOME": str(home)}
    proc = subprocess.Popen([str(nettrace), "sql", "SELECT * FROM range(200000)", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()  # the reader is gone before the rest is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
