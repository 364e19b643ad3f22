"""kill -9 between "intent written" and "order acknowledged", then restart: exactly one order at
the venue and a consistent ledger. The process really dies (SIGKILL from outside, mid-request)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Fill, Order, PaperOrder, Position
from tests.fakes.binance import FakeBinance

CHILD = r"""
import json, sys, time
from pathlib import Path
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.ccxt_broker import CcxtBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker

mode, url, venue, price, marker = sys.argv[1:6]
ledger = Ledger(url)
if venue == "paper":
    broker = PaperBroker(ledger)
    if mode == "trade":  # park right after the venue accepted, before the engine books the answer
        inner_place = broker.place
        def place(request):
            state = inner_place(request)
            Path(marker).touch()
            time.sleep(60)
            return state
        broker.place = place
else:
    coord = Coordinator(ledger)
    broker = CcxtBroker("binance", "k", "s", live_trading=True, base_url=venue, api_budget=coord.api_call,
                        timeout_ms=30_000)
engine = ExecutionEngine(ledger, broker)
if mode == "trade":
    engine.submit(Intent("s", "BTC-USDT", "entry", float(price), "bar-1", 0.9, 3))
else:
    print(json.dumps(engine.reconcile().to_dict()))
"""


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance() as server:
        yield server


def child(tmp: Path, mode: str, venue: str, price: float) -> subprocess.Popen:
    script = tmp / "child.py"
    script.write_text(CHILD)
    url = f"sqlite:///{tmp / 'ledger.db'}"
    return subprocess.Popen([sys.executable, str(script), mode, url, venue, str(price), str(tmp / "marker")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the child never reached the crash point"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def restart(tmp: Path, venue: str) -> dict:
    proc = child(tmp, "reconcile", venue, 0.0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def ledger_orders(tmp: Path) -> list[Order]:
    with Ledger(f"sqlite:///{tmp / 'ledger.db'}").read() as s:
        return list(s.scalars(select(Order)))


def assert_consistent(tmp: Path, venue_qty: float) -> None:
    """One filled order, one fill, a position of what the venue filled, nothing held or open."""
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    with ledger.read() as s:
        [order] = s.scalars(select(Order)).all()
        assert order.status == "filled" and order.filled_qty == pytest.approx(venue_qty)
        assert s.scalar(select(func.count()).select_from(Fill)) == 1
        [pos] = s.scalars(select(Position)).all()
        assert 0 < pos.qty <= venue_qty
    from nettrace_dagster.coordinator.core import Coordinator
    assert Coordinator(ledger).snapshot()["reservations"] == {}


def test_killed_while_the_venue_holds_the_reply(fake: FakeBinance, tmp_path: Path) -> None:
    fake.accept_then_timeout("/api/v3/order", delay=30)
    proc = child(tmp_path, "trade", fake.base_url, fake.price("BTCUSDT"))
    kill_when(proc, lambda: len(fake.orders) == 1)  # the venue has it; the ack never arrived
    assert [o.status for o in ledger_orders(tmp_path)] == ["intent"]  # written before it was sent
    report = restart(tmp_path, fake.base_url)
    assert report["booked"] and not report.get("resent")
    assert len(fake.orders) == 1 and sum(1 for m, p, _ in fake.calls if m == "POST" and p == "/api/v3/order") == 1
    assert_consistent(tmp_path, float(fake.orders[0].executed_qty))


def test_killed_before_the_venue_got_the_order(fake: FakeBinance, tmp_path: Path) -> None:
    fake.fail_next("/api/v3/order", method="POST", delay=30)  # the request hangs and is never processed
    proc = child(tmp_path, "trade", fake.base_url, fake.price("BTCUSDT"))
    kill_when(proc, lambda: fake.hits["/api/v3/order"] >= 1)
    assert fake.orders == [] and [o.status for o in ledger_orders(tmp_path)] == ["intent"]
    report = restart(tmp_path, fake.base_url)
    assert report["resent"] and len(fake.orders) == 1
    assert_consistent(tmp_path, float(fake.orders[0].executed_qty))
    assert restart(tmp_path, fake.base_url)["checked"] == 0 and len(fake.orders) == 1


def test_paper_broker_killed_between_fill_and_booking(tmp_path: Path) -> None:
    proc = child(tmp_path, "trade", "paper", 100.0)
    kill_when(proc, lambda: (tmp_path / "marker").exists())
    assert [o.status for o in ledger_orders(tmp_path)] == ["intent"]
    report = restart(tmp_path, "paper")
    assert report["booked"] and not report.get("resent")
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").read() as s:
        [venue] = s.scalars(select(PaperOrder)).all()
    assert_consistent(tmp_path, venue.filled_qty)
