"""The holes a hands-on attempt to break the execution layer found (issue 7), each reproduced:
stale marks, killed ticks, orders in flight, sends after expiry, per-account Rule 3, an
unwritable audit log, and status while a trigger holds. Live/paper separation is in
test_live_separation.py; the run-config attacks in test_run_config_security.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nettrace_dagster.audit import read_audit
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.broker import BrokerOrder, BrokerUnknown, OrderRequest
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Flag, Order, PaperOrder, Position
from nettrace_dagster.rules import Rules, entry_gate
from nettrace_dagster.trading.trader import Trader
from tests.scripted import Script, bars, install

NETTRACE = str(Path(sys.executable).with_name("nettrace"))  # the installed console script


def ledger_at(tmp: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp / 'ledger.db'}")


def venue_orders(ledger: Ledger) -> list[PaperOrder]:
    with ledger.read() as s:
        return list(s.scalars(select(PaperOrder)))


def buy(key: str, price: float = 100.0, strategy: str = "s", symbol: str = "BTC-USDT") -> Intent:
    return Intent(strategy, symbol, "entry", price, key, 0.9, 3)


# --- 3. stale marks -----------------------------------------------------------------------------
def test_a_catch_up_tick_judges_entries_on_every_symbols_mark(tmp_path: Path, monkeypatch) -> None:
    """BTC is bought at 100 and halves over the next bars; an ETH entry signal later in the same
    tick must see the BTC loss (≈ $12.5 on a $25 position > the $5 daily limit) and be refused."""
    btc = [100.0, 100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 50.0, 50.0]
    eth = [10.0] * len(btc)
    install(monkeypatch, Script(entries={"BTC-USDT": {1}, "ETH-USDT": {7}}))
    ledger = ledger_at(tmp_path)
    t = Trader(ExecutionEngine(ledger, PaperBroker(ledger)), Coordinator(ledger), [("scripted", {})], catch_up_bars=50)
    report = t.tick({"BTC-USDT": bars("BTC-USDT", btc), "ETH-USDT": bars("ETH-USDT", eth)})
    entries = {d["symbol"]: d for d in report.decisions if d["kind"] == "entry"}
    assert entries["BTC-USDT"]["approved"] and entries["BTC-USDT"]["status"] == "filled"
    assert not entries["ETH-USDT"]["approved"]
    assert any("daily loss" in r for r in entries["ETH-USDT"]["reasons"]), entries["ETH-USDT"]["reasons"]
    assert [o.symbol for o in venue_orders(ledger)] == ["BTC-USDT"]
    day_pnl = t.engine.status()["rules"]["daily_pnl"]
    assert day_pnl == pytest.approx(-12.5, abs=0.6)  # 25 % of $100 lost half, plus fees


def test_an_entry_without_a_current_mark_for_a_held_symbol_is_refused(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    eng = ExecutionEngine(ledger, PaperBroker(ledger))
    assert eng.submit(buy("b1")).status == "filled"
    blind = eng.submit(buy("e1", 10.0, symbol="ETH-USDT"))
    assert not blind.approved and any("no current price for held BTC-USDT" in r for r in blind.reasons)
    assert eng.submit(buy("e2", 10.0, symbol="ETH-USDT"), {"BTC-USDT": 100.0}).approved


def test_live_markets_never_enter_on_old_bars(tmp_path: Path, monkeypatch) -> None:
    install(monkeypatch, Script(entries={"BTC-USDT": {1}}))
    ledger = ledger_at(tmp_path)
    t = Trader(ExecutionEngine(ledger, PaperBroker(ledger)), Coordinator(ledger), [("scripted", {})],
               catch_up_bars=50, max_bar_age_s=180)
    report = t.tick({"BTC-USDT": bars("BTC-USDT", [100.0] * 5)})  # bars from 2026-01-01: far too old
    assert report.decisions == [] and "stale signal only exits" in report.reasons[0]


# --- 4. a killed tick ---------------------------------------------------------------------------
CHILD = r"""
import sys, time
from pathlib import Path
import pytest
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.trading.trader import Trader
from tests.scripted import Script, bars, install

url, marker = sys.argv[1:3]
mp = pytest.MonkeyPatch()
install(mp, Script(entries={"BTC-USDT": {1}}, exits={"BTC-USDT": {3}}))
ledger = Ledger(url)
broker = PaperBroker(ledger)
def park(request):  # the exit's intent is written; the process dies before the venue hears of it
    if request.side == "sell":
        Path(marker).touch()
        time.sleep(120)
    return PaperBroker.place(broker, request)
broker.place = park
Trader(ExecutionEngine(ledger, broker), Coordinator(ledger), [("scripted", {})], catch_up_bars=50).tick(
    {"BTC-USDT": bars("BTC-USDT", [100.0, 100.0, 101.0, 102.0, 103.0])})
"""


def killed_mid_exit(tmp: Path) -> None:
    script = tmp / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), f"sqlite:///{tmp / 'ledger.db'}", str(tmp / "marker")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not (tmp / "marker").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the child never reached the exit"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


@pytest.mark.parametrize("ttl", [600.0, 0.0], ids=["resent", "expired-then-rederived"])
def test_a_killed_tick_neither_blocks_the_next_nor_drops_its_exit(tmp_path: Path, monkeypatch, ttl: float) -> None:
    killed_mid_exit(tmp_path)
    ledger = ledger_at(tmp_path)
    with ledger.read() as s:
        assert [(o.kind, o.status) for o in s.scalars(select(Order).order_by(Order.id))] == [
            ("entry", "filled"), ("exit", "intent")]
    install(monkeypatch, Script(entries={}))  # no new signal: only the repair may sell
    engine = ExecutionEngine(ledger, PaperBroker(ledger), intent_ttl_s=ttl)
    started = time.monotonic()
    report = Trader(engine, Coordinator(ledger), [("scripted", {})], catch_up_bars=50).tick(
        {"BTC-USDT": bars("BTC-USDT", [100.0, 100.0, 101.0, 102.0, 103.0, 104.0])})
    assert report.ran, report.reasons  # at once: the dead tick's lock died with it
    assert time.monotonic() - started < 30
    with ledger.read() as s:
        assert s.scalar(select(func.sum(Position.qty))) == 0  # the position was sold
        sells = [o for o in s.scalars(select(Order).where(Order.kind == "exit"))]
    assert sum(o.filled_qty for o in sells) > 0
    assert [o.side for o in venue_orders(ledger)] == ["buy", "sell"]  # exactly one sale at the venue
    if ttl == 0.0:
        assert report.reconcile["expired"] and any(d["key"].startswith("redo-") for d in report.decisions)


def test_a_live_holder_of_the_trading_lock_keeps_a_second_tick_out(tmp_path: Path, monkeypatch) -> None:
    ledger = ledger_at(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from nettrace_dagster.coordinator.core import Coordinator\n"
        "from nettrace_dagster.ledger.db import Ledger\n"
        "with Coordinator(Ledger(sys.argv[1])).exclusive('trading', 'trader:main') as mine:\n"
        "    print(mine, flush=True)\n"
        "    time.sleep(120)\n"), f"sqlite:///{tmp_path / 'ledger.db'}"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"True"
        install(monkeypatch, Script(entries={}))
        t = Trader(ExecutionEngine(ledger, PaperBroker(ledger)), Coordinator(ledger), [("scripted", {})])
        skipped = t.tick({"BTC-USDT": bars("BTC-USDT", [100.0] * 3)})
        assert not skipped.ran and "already trading" in skipped.reasons[0]
    finally:
        holder.kill()
        holder.wait()
    assert t.tick({"BTC-USDT": bars("BTC-USDT", [100.0] * 3)}).ran  # its holder is dead: free at once


# --- 5. orders in flight ------------------------------------------------------------------------
class Unreachable(PaperBroker):
    """The request times out before the venue processes it (the order does not exist there)."""

    def place(self, request: OrderRequest) -> BrokerOrder:
        raise BrokerUnknown("read timed out")


def test_an_entry_in_flight_counts_as_held(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    first = ExecutionEngine(ledger, Unreachable(ledger)).submit(buy("bar-1"))
    assert first.approved and first.status == "unknown"
    eng = ExecutionEngine(ledger, PaperBroker(ledger))
    second = eng.submit(buy("bar-2"))
    assert not second.approved and any("in flight" in r for r in second.reasons), second.reasons
    assert eng.reconcile().resent == [first.client_order_id]
    assert [o.side for o in venue_orders(ledger)] == ["buy"]  # one buy, not two
    assert eng.status()["positions"][0]["value"] == pytest.approx(25.0, rel=0.01)  # 25 %, not 50 %


def test_an_exit_in_flight_is_not_sent_twice(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    eng = ExecutionEngine(ledger, PaperBroker(ledger))
    eng.submit(buy("bar-1"))
    out = ExecutionEngine(ledger, Unreachable(ledger)).submit(Intent("s", "BTC-USDT", "exit", 100.0, "bar-2"))
    assert out.status == "unknown"
    again = eng.submit(Intent("s", "BTC-USDT", "exit", 100.0, "bar-3"))
    assert again.status == "none" and "in flight" in again.reasons[0]
    eng.reconcile()
    assert [o.side for o in venue_orders(ledger)] == ["buy", "sell"]


# --- 16. send checks the order's state ----------------------------------------------------------
def test_send_never_places_an_expired_order_nor_an_entry_under_hardstop(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    clock = [1_800_000_000.0]
    eng = ExecutionEngine(ledger, PaperBroker(ledger), clock=lambda: clock[0])
    with ledger.tx() as s:
        old = eng._decide_and_write(s, buy("old"), None, [])
    clock[0] += eng.intent_ttl_s + 1
    assert eng.reconcile().expired == [old.client_order_id]
    assert eng.send(old.client_order_id).status == "expired" and venue_orders(ledger) == []
    with ledger.tx() as s:
        fresh = eng._decide_and_write(s, buy("new", strategy="t"), None, [])
    eng.set_hardstop(True, "operator")
    sent = eng.send(fresh.client_order_id)
    assert sent.status == "rejected" and "HARDSTOP" in sent.reasons[-1] and venue_orders(ledger) == []


# --- 17. Rule 3 per account ---------------------------------------------------------------------
def test_firing_a_strategy_in_one_account_leaves_it_free_in_another(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    a = ExecutionEngine(ledger, PaperBroker(ledger), account="a")
    b = ExecutionEngine(ledger, PaperBroker(ledger), account="b")
    for i in range(10):  # ten losing round trips: Rule 3 fires "s" in account a
        assert a.submit(buy(f"in-{i}")).status == "filled"
        assert a.submit(Intent("s", "BTC-USDT", "exit", 99.0, f"out-{i}")).status == "filled"
    assert a.mark({"BTC-USDT": 99.0}).verdicts == {"s": "fired"}
    assert any("fired" in r for r in a.submit(buy("again", 99.0)).reasons)
    assert b.submit(buy("fresh", 99.0)).approved


# --- 10. an unwritable audit log ----------------------------------------------------------------
def test_an_unwritable_audit_log_never_blocks_the_kill_switch_nor_loses_its_record(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit folder should be")
    ledger = ledger_at(tmp_path)
    eng = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=blocker / "audit")
    assert eng.submit(buy("b1")).status == "filled"  # orders go on
    result = eng.set_hardstop(True, "operator")
    assert result.on and result.audit_pending >= 2 and "unwritable" in result.audit_error
    with ledger.read() as s:
        assert s.get(Flag, "hardstop").on
    assert eng.submit(Intent("s", "BTC-USDT", "exit", 100.0, "x1")).status == "filled"  # exits go on
    blocker.unlink()
    assert eng.gate.flush_audit() == 0
    decisions = [r["decision"] for r in read_audit(blocker / "audit", "conflict_log")]
    assert "hardstop_on" in decisions and "reservation" in decisions


def test_hardstop_cli_with_an_unwritable_audit_folder_says_so_in_one_line(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "audit").write_text("not a folder")
    env = {**os.environ, "NETTRACE_HOME": str(home)}
    run = subprocess.run([NETTRACE, "hardstop", "on"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "HARDSTOP on"
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert "unwritable" in run.stderr and "kept in the ledger" in run.stderr
    status = subprocess.run([NETTRACE, "status", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    st = json.loads(status.stdout)
    assert st["hardstop"]["on"] and st["audit"]["pending"] >= 1


# --- 6. the kill switch needs only the ledger ---------------------------------------------------
@pytest.mark.parametrize("exchange", ["binance", "no-such-exchange"])
def test_hardstop_works_live_without_keys_or_a_valid_exchange(home: Path, exchange: str) -> None:
    env = {**os.environ, "NETTRACE_HOME": str(home), "NETTRACE_LIVE_TRADING": "1", "NETTRACE_CCXT_EXCHANGE": exchange}
    env.pop("NETTRACE_EXCHANGE_API_KEY", None)
    env.pop("NETTRACE_EXCHANGE_API_SECRET", None)
    run = subprocess.run([NETTRACE, "hardstop", "on", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and json.loads(run.stdout)["hardstop"], run.stderr
    status = subprocess.run([NETTRACE, "status", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and json.loads(status.stdout)["hardstop"]["on"], status.stderr


# --- 18. status while a trigger holds; digits in rejections -------------------------------------
def test_status_never_says_off_while_a_rule_1_trigger_holds(tmp_path: Path) -> None:
    ledger = ledger_at(tmp_path)
    eng = ExecutionEngine(ledger, PaperBroker(ledger))
    eng.submit(buy("b1"))
    eng.mark({"BTC-USDT": 70.0})  # ≈ 7.5 % down from the peak: no trigger at the built-in 30 %
    assert not eng.status()["hardstop"]["on"]
    strict = ExecutionEngine(ledger, PaperBroker(ledger), rules=Rules().tightened(max_drawdown=0.05))
    st = strict.status()
    assert st["hardstop"]["on"] and st["rules"]["hardstop_triggers"] and not st["rules"]["entries_allowed"]


def test_a_rejection_prints_enough_digits() -> None:
    [reason] = entry_gate(0.6999, 2).reasons
    assert reason.startswith("confidence 0.6999 < 0.7")
