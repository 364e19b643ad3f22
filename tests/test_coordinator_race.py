"""Sixteen processes racing entries through the execution engine (the capital each order holds is
reserved in the same transaction as the decision) never over-allocate (SQLite here; the same race
on PostgreSQL is in test_ledger_postgres.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Capital, Reservation

WORKER = r"""
import json, random, sys, time
from pathlib import Path
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger

url, audit, gate, seed, n = sys.argv[1:6]
ledger = Ledger(url)
engine = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=audit)
Path(gate, f"ready-{seed}").touch()
while not Path(gate, "go").exists():
    time.sleep(0.001)
rng = random.Random(int(seed))
out = []
for i in range(int(n)):
    symbol = rng.choice(["BTC-USDT", "ETH-USDT"])
    d = engine.submit(Intent(f"w{seed}-{i}", symbol, "entry", 100.0, "race", 0.9, 3,
                             notional=round(rng.uniform(1, 8), 2)), {"BTC-USDT": 100.0, "ETH-USDT": 100.0})
    out.append([d.approved, d.client_order_id, d.notional, d.status])
print(json.dumps(out))
"""

POOL = 90.0  # $100 of capital minus the $10 floor
FEE = 0.001


def run_race(url: str, tmp: Path, procs: int = 16, each: int = 15) -> list[list]:
    """Start `procs` workers, release them at once, and return every entry decision."""
    ledger = Ledger(url)  # schema and account exist before the race
    ExecutionEngine(ledger, PaperBroker(ledger))
    ledger.dispose()
    script, gate = tmp / "worker.py", tmp / "gate"
    script.write_text(WORKER)
    gate.mkdir()
    outs = [(tmp / f"out-{i}.json").open("w") for i in range(procs)]
    workers = [subprocess.Popen([sys.executable, str(script), url, str(tmp / "audit"), str(gate), str(i), str(each)],
                                stdout=outs[i], stderr=subprocess.PIPE) for i in range(procs)]
    deadline = time.monotonic() + 60
    while len(list(gate.glob("ready-*"))) < procs:
        assert time.monotonic() < deadline, "workers did not start"
        assert all(w.poll() is None for w in workers), [w.stderr.read() for w in workers if w.poll() is not None]
        time.sleep(0.02)
    (gate / "go").touch()
    for w in workers:
        assert w.wait(timeout=60) == 0, w.stderr.read().decode()[-2000:]
    for fh in outs:
        fh.close()
    return [row for i in range(procs) for row in json.loads((tmp / f"out-{i}.json").read_text())]


def assert_never_over_allocated(url: str, decisions: list[list]) -> None:
    """Every approved entry filled, and together they spent at most the pool above the floor."""
    approved = [d for d in decisions if d[0]]
    assert approved and all(d[3] == "filled" for d in approved)
    assert len({d[1] for d in approved}) == len(approved)  # one order per intent
    spent = sum(d[2] * (1 + FEE) for d in approved)
    assert spent <= POOL + 1e-6, f"over-allocated: ${spent:.2f} of ${POOL:.2f}"
    with Ledger(url).read() as s:
        cash = s.get(Capital, "main").cash
        active = s.scalar(select(func.count()).select_from(Reservation).where(Reservation.status == "active"))
    assert cash == pytest.approx(100.0 - spent, abs=1e-6) and cash >= 10.0 - 1e-6
    assert active == 0  # every order's hold was consumed or released
    assert any(not d[0] for d in decisions), "no contention: the race proved nothing"


@pytest.mark.slow(seconds=7)
def test_sixteen_processes_never_over_allocate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    decisions = run_race(url, tmp_path)
    assert len(decisions) == 16 * 15
    assert_never_over_allocated(url, decisions)
