"""The execution engine with the paper broker: idempotency, crash repair, and each rule in action."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from nettrace_dagster.audit import read_audit
from nettrace_dagster.execution.broker import BrokerOrder, BrokerRejected, BrokerUnknown, OrderRequest
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger, LedgerError
from nettrace_dagster.ledger.models import Order, PaperOrder


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(ledger: Ledger, clock: Clock, tmp: Path | None = None, broker: object | None = None) -> ExecutionEngine:
    return ExecutionEngine(ledger, broker or PaperBroker(ledger, clock=clock), audit_dir=tmp, clock=clock)


def buy(key: str, price: float = 100.0, strategy: str = "s", symbol: str = "BTC-USDT") -> Intent:
    return Intent(strategy, symbol, "entry", price, key, 0.8, 2)


def sell(key: str, price: float = 100.0, strategy: str = "s", symbol: str = "BTC-USDT") -> Intent:
    return Intent(strategy, symbol, "exit", price, key)


def venue_orders(ledger: Ledger) -> int:
    with ledger.read() as s:
        return int(s.scalar(select(func.count()).select_from(PaperOrder)))


def test_same_intent_twice_places_one_order(ledger: Ledger, clock: Clock, tmp_path: Path) -> None:
    eng = make(ledger, clock, tmp_path / "audit")
    first, again = eng.submit(buy("t1")), eng.submit(buy("t1"))
    assert first.approved and first.status == "filled" and not first.duplicate
    assert again.duplicate and again.client_order_id == first.client_order_id
    assert venue_orders(ledger) == 1
    assert len(first.client_order_id) <= 36 and first.client_order_id == buy("t1").client_order_id
    assert any(r["decision"] == "reservation" for r in read_audit(tmp_path / "audit", "conflict_log"))


def test_intent_written_then_crash_is_sent_once_on_restart(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    with ledger.tx() as s:  # exactly what a process that died right after step 1 leaves behind
        d = eng._decide_and_write(s, buy("t1"), None, [])
    assert d.status == "intent" and venue_orders(ledger) == 0
    report = make(ledger, clock).reconcile()
    assert report.resent == [d.client_order_id] and venue_orders(ledger) == 1
    assert make(ledger, clock).reconcile().checked == 0  # nothing left open
    assert make(ledger, clock).submit(buy("t1")).duplicate


class LoseReply:
    """The venue fills the order, but the reply never arrives (timeout after acceptance)."""

    name, mode = "paper", "paper"

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner

    def place(self, request: OrderRequest) -> BrokerOrder:
        self.inner.place(request)
        raise BrokerUnknown("read timed out")

    def fetch(self, coid: str, symbol: str) -> BrokerOrder | None:
        return self.inner.fetch(coid, symbol)

    def cancel(self, coid: str, symbol: str) -> BrokerOrder | None:
        return self.inner.fetch(coid, symbol)


def test_timeout_leaves_unknown_until_reconciliation_books_it(ledger: Ledger, clock: Clock) -> None:
    paper = PaperBroker(ledger, clock=clock)
    d = make(ledger, clock, broker=LoseReply(paper)).submit(buy("t1"))
    assert d.approved and d.status == "unknown"
    assert make(ledger, clock).status()["reservations"]["active"] == 1  # still held while unknown
    report = make(ledger, clock).reconcile()
    assert report.booked == [d.client_order_id] and venue_orders(ledger) == 1
    st = make(ledger, clock).status()
    assert st["orders"]["by_status"] == {"filled": 1} and st["reservations"]["active"] == 0
    assert len(st["positions"]) == 1


class Refuse(PaperBroker):
    def place(self, request: OrderRequest) -> BrokerOrder:
        raise BrokerRejected("insufficient balance")


def test_broker_rejection_releases_the_capital(ledger: Ledger, clock: Clock) -> None:
    d = make(ledger, clock, broker=Refuse(ledger)).submit(buy("t1"))
    assert not d.approved and d.status == "rejected" and "insufficient balance" in d.reasons[-1]
    assert make(ledger, clock).status()["reservations"]["active"] == 0


def test_stale_intent_expires_and_hardstop_rejects_unsent_entries(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    with ledger.tx() as s:
        stale = eng._decide_and_write(s, buy("old"), None, [])
    clock.t += eng.intent_ttl_s + 1
    with ledger.tx() as s:
        fresh = eng._decide_and_write(s, buy("new", strategy="other"), None, [])
    eng.set_hardstop(True, "operator")
    report = eng.reconcile()
    assert report.expired == [stale.client_order_id] and report.rejected == [fresh.client_order_id]
    assert venue_orders(ledger) == 0 and eng.status()["reservations"]["active"] == 0


def test_drawdown_latches_hardstop_exits_still_go_and_off_is_refused(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    assert eng.submit(buy("t1", 100.0)).status == "filled"
    symbols = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
    for i, strategy in enumerate(("a", "b", "c")):
        assert eng.submit(buy("t1", 100.0, strategy, symbols[i + 1]), dict.fromkeys(symbols, 100.0)).approved
    # four positions of ~25 % each; a 40 % fall is a >30 % drawdown
    result = eng.mark(dict.fromkeys(symbols, 60.0))
    assert result.snapshot.hardstop and result.rule_status["hardstop_triggers"]
    refused = eng.submit(buy("t2", 60.0, "d", "ADA-USDT"), dict.fromkeys(symbols, 60.0))
    assert not refused.approved and any("HARDSTOP" in r for r in refused.reasons)
    assert eng.submit(sell("t3", 60.0)).status == "filled"  # exits are always allowed
    refused = eng.set_hardstop(False)
    assert refused.on and not refused.changed and "refused" in refused.reasons[0]
    reset = eng.set_hardstop(False, "new baseline", reset_peak=True)
    assert not reset.on and reset.changed


def test_daily_loss_limit_blocks_entries_until_the_next_day(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    eng.submit(buy("t1", 100.0))
    eng.mark({"BTC-USDT": 75.0})  # ~25 $ position loses ~6 $
    d = eng.submit(buy("t2", 75.0, "b", "ETH-USDT"), {"BTC-USDT": 75.0})
    assert not d.approved and any("daily loss" in r for r in d.reasons)
    clock.t += 86_400
    assert eng.submit(buy("t3", 75.0, "b", "ETH-USDT"), {"BTC-USDT": 75.0}).approved


def test_profit_lock_and_principal_lock(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    eng.submit(buy("t1", 100.0))
    eng.submit(sell("t2", 200.0))
    st = eng.status()
    pnl = st["strategies"][0]["net_pnl"]
    assert pnl > 20 and st["rules"]["locked_profit"] == pytest.approx(0.75 * pnl)
    assert not st["rules"]["principal_locked"]
    for k in range(8):  # keep doubling until gains exceed 100 %
        eng.submit(buy(f"b{k}", 100.0))
        eng.submit(sell(f"s{k}", 300.0))
        if eng.status()["rules"]["principal_locked"]:
            break
    st = eng.status()
    assert st["rules"]["principal_locked"] and st["equity"] > 200
    locked = st["principal"] + st["rules"]["locked_profit"]
    assert st["rules"]["free_capital"] == pytest.approx(st["cash"] - locked - st["rules"]["reserve_floor"])


def test_losing_strategy_is_blocked_then_fired(ledger: Ledger, clock: Clock) -> None:
    eng = make(ledger, clock)
    for k in range(10):
        assert eng.submit(buy(f"b{k}", 100.0)).approved
        eng.submit(sell(f"s{k}", 99.9))
        eng.mark({"BTC-USDT": 100.0})
        clock.t += 86_400  # keep the daily loss limit out of this test
    d = eng.submit(buy("b10", 100.0))
    assert not d.approved and ("win rate" in d.reasons[0] or "fired" in d.reasons[0])
    assert eng.status()["strategies"][0]["status"] == "fired"
    assert eng.submit(buy("b11", 100.0, strategy="fresh")).approved


def test_ledger_is_wal_and_refuses_nested_writes(ledger: Ledger) -> None:
    with ledger.read() as s:
        assert s.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    with pytest.raises(LedgerError), ledger.tx(), ledger.tx():
        pass
    with ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0
