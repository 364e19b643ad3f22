"""The ledger on PostgreSQL (the scale-out path): the same engine and coordinator, row locks instead
of SQLite's write lock. Each test gets a fresh schema in the session's scratch database on
127.0.0.1:5432 (`pg_url`, tests/pg.py): skipped with the reason when PostgreSQL is absent, a
failure in CI."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger, redact
from nettrace_dagster.ledger.models import PaperOrder
from tests.test_coordinator_race import assert_never_over_allocated, run_race

pytestmark = pytest.mark.postgres


def test_engine_round_trip_on_postgres(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    assert ledger.dialect == "postgresql" and "+psycopg" in redact(ledger.url)
    engine = ExecutionEngine(ledger, PaperBroker(ledger))
    d = engine.submit(Intent("s", "BTC-USDT", "entry", 100.0, "k1", 0.9, 3))
    assert d.status == "filled" and engine.submit(Intent("s", "BTC-USDT", "entry", 100.0, "k1", 0.9, 3)).duplicate
    assert engine.submit(Intent("s", "BTC-USDT", "exit", 110.0, "k2")).status == "filled"
    st = engine.status()
    assert st["strategies"][0]["trades"] == 1 and st["rules"]["locked_profit"] > 0
    assert engine.set_hardstop(True, "pg").on and not engine.submit(Intent("s", "BTC-USDT", "entry", 1.0, "k3", 0.9, 3)).approved
    ledger.dispose()


def test_threads_submitting_one_intent_place_one_order(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    intent = Intent("s", "ETH-USDT", "entry", 50.0, "same-bar", 0.9, 3)
    results: list = []
    barrier = threading.Barrier(8, timeout=30)

    def worker() -> None:
        try:
            engine = ExecutionEngine(ledger, PaperBroker(ledger))
        finally:
            barrier.wait()
        results.append(engine.submit(intent))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 8
    assert sum(not d.duplicate for d in results) == 1
    with ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(PaperOrder)) == 1
    ledger.dispose()


@pytest.mark.slow(seconds=6)
def test_processes_never_over_allocate_on_postgres(pg_url: str, tmp_path: Path) -> None:
    # Eight processes (the sixteen-process race runs on the default SQLite ledger): enough to make
    # the row lock on `capital` the only thing between them and over-allocation.
    decisions = run_race(pg_url, tmp_path, procs=8, each=15)
    assert len(decisions) == 8 * 15
    assert any(d[0] for d in decisions), "nothing was granted: the race proved nothing"
    assert_never_over_allocated(pg_url, decisions)
