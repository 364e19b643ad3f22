"""A ledger written by the previous NetTrace (accounts without a mode, Rule 3 verdicts keyed by
strategy alone) opens under today's code with every row kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger

# The two tables as the previous release created them (its DDL, verbatim from SQLite).
OLD = """
CREATE TABLE capital (account VARCHAR(64) NOT NULL, principal FLOAT NOT NULL, cash FLOAT NOT NULL,
  peak_equity FLOAT NOT NULL, day VARCHAR(10) NOT NULL, day_start_equity FLOAT NOT NULL,
  last_equity FLOAT NOT NULL, locked_profit FLOAT NOT NULL, principal_locked BOOLEAN NOT NULL,
  updated_at FLOAT NOT NULL, PRIMARY KEY (account));
CREATE TABLE strategy_states (strategy VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL,
  reason TEXT NOT NULL, updated_at FLOAT NOT NULL, PRIMARY KEY (strategy));
INSERT INTO capital VALUES ('main', 100, 87.5, 120, '2026-11-30', 95, 90, 3, 0, 1.0);
INSERT INTO capital VALUES ('other', 50, 50, 50, '2026-11-30', 50, 50, 0, 0, 1.0);
INSERT INTO strategy_states VALUES ('momentum', 'fired', 'fire: 10 trades (Rule 3)', 1.0);
"""


def test_an_old_ledger_opens_with_every_row_kept(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD)
    ledger = Ledger(f"sqlite:///{db}")
    engine = ExecutionEngine(ledger, PaperBroker(ledger))
    st = engine.status()
    assert st["cash"] == 87.5 and st["principal"] == 100 and st["mode"] == "paper"
    refused = engine.submit(Intent("momentum", "BTC-USDT", "entry", 100.0, "k", 0.9, 3))
    assert not refused.approved and "strategy was fired (Rule 3)" in refused.reasons
    other = ExecutionEngine(ledger, PaperBroker(ledger), account="other")
    assert not other.submit(Intent("momentum", "BTC-USDT", "entry", 100.0, "k", 0.9, 3)).approved
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM strategy_states").fetchone() == (2,)
        assert "strategy_states_v1" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
