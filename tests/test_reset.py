"""`nettrace reset`: deletes a NetTrace home's state only when confirmed, never an arbitrary
folder, never under a running trading tick."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace_dagster.cli import main
from nettrace_dagster.settings import load_settings


def _populate(home: Path) -> None:
    from nettrace_dagster.ledger.db import ledger_of

    (home / "lake" / "candles").mkdir(parents=True)
    (home / "lake" / "candles" / "BTC-USDT.parquet").write_bytes(b"x")
    (home / "dagster").mkdir()
    ledger_of(load_settings())  # creates ledger.db


def test_reset_with_yes_deletes_the_state(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(home)
    assert (home / "ledger.db").exists()
    assert main(["reset", "--yes"]) == 0
    assert home.is_dir() and not any(home.iterdir())
    assert "deleted" in capsys.readouterr().out


def test_reset_without_a_terminal_and_without_yes_refuses(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _populate(home)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["reset"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--yes" in err
    assert (home / "ledger.db").exists() and (home / "lake").exists()


def test_reset_asks_and_only_yes_deletes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate(home)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "")  # Enter: the default is No
    assert main(["reset"]) == 1
    assert (home / "ledger.db").exists()
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    assert main(["reset"]) == 0
    assert not (home / "ledger.db").exists() and not (home / "lake").exists()


def test_reset_refuses_a_folder_that_is_not_a_nettrace_home(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True)
    precious = home / "thesis.tex"
    precious.write_text("years of work")
    assert main(["reset", "--yes"]) == 2
    assert "does not look like a NetTrace home" in capsys.readouterr().err
    assert precious.read_text() == "years of work"


def test_reset_refuses_while_a_trading_tick_holds_the_lock(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.coordinator.locks import process_lock
    from nettrace_dagster.ledger.db import ledger_of

    _populate(home)
    with process_lock(ledger_of(load_settings()), "trading-trader:main") as held:
        assert held
        assert main(["reset", "--yes"]) == 2
    assert "trading tick" in capsys.readouterr().err
    assert (home / "ledger.db").exists()
    assert main(["reset", "--yes"]) == 0  # the tick ended: now it may
