"""The trading loop: ticks on simulated candles, idempotent replays, the portfolio asset, the
trading_tick schedule, and the `nettrace status` / `nettrace hardstop` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from nettrace_dagster.audit import read_audit
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Order, PaperOrder
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.trading.trader import Trader
from tests.scripted import Script, bars, install

SYMBOLS = ("BTC-USDT", "ETH-USDT")


@pytest.fixture(scope="module")
def candles() -> dict:
    return {s: simulate(s, 3000) for s in SYMBOLS}


def trader(tmp: Path, catch_up: int = 800) -> Trader:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    return Trader(ExecutionEngine(ledger, PaperBroker(ledger)), Coordinator(ledger, audit_dir=tmp / "audit"),
                  catch_up_bars=catch_up)


def venue_orders(t: Trader) -> int:
    with t.engine.ledger.read() as s:
        return int(s.scalar(select(func.count()).select_from(PaperOrder)))


def test_a_tick_trades_new_bars_once(tmp_path: Path, candles: dict) -> None:
    t = trader(tmp_path)
    report = t.tick(candles)
    assert report.ran and report.bars == 800
    assert report.counts().get("filled", 0) > 0, report.counts()
    assert report.mark is not None and report.mark.rule_status["equity"] > 0
    placed = venue_orders(t)
    again = t.tick(candles)
    assert again.bars == 0 and again.decisions == [] and venue_orders(t) == placed
    longer = {s: simulate(s, 3010) for s in SYMBOLS}  # ten new bars arrive
    assert t.tick(longer).bars == 10


CRASH_CHILD = r"""
import sys, time
from pathlib import Path
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.trading.trader import Trader

url, marker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ledger = Ledger(url)
broker = PaperBroker(ledger)
placed = []
def place(request):  # the venue fills the n-th order; the process is killed before it is booked
    state = PaperBroker.place(broker, request)
    placed.append(request)
    if len(placed) == n:
        Path(marker).touch()
        time.sleep(120)
    return state
broker.place = place
Trader(ExecutionEngine(ledger, broker), Coordinator(ledger), catch_up_bars=800).tick(
    {s: simulate(s, 3000) for s in ("BTC-USDT", "ETH-USDT")})
"""


def test_a_killed_tick_resumes_to_the_same_ledger_as_a_clean_one(tmp_path: Path, candles: dict) -> None:
    clean = trader(tmp_path / "clean")
    clean.tick(candles)
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "child.py").write_text(CRASH_CHILD)
    proc = subprocess.Popen([sys.executable, str(crash / "child.py"), f"sqlite:///{crash / 'ledger.db'}",
                             str(crash / "marker"), "7"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (crash / "marker").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # a real crash: nothing in the process runs after this
    assert proc.wait(timeout=10) == -signal.SIGKILL
    resumed = trader(crash)  # a new process: reconcile at once, then carry on from the cursor
    report = resumed.tick(candles)
    assert report.ran and report.reconcile["booked"] and 0 < report.bars < 800
    assert venue_orders(resumed) == venue_orders(clean)
    assert resumed.engine.status()["orders"] == clean.engine.status()["orders"]
    assert resumed.engine.status()["equity"] == pytest.approx(clean.engine.status()["equity"])


def test_entries_respect_the_rules(tmp_path, candles) -> None:
    t = trader(tmp_path)
    report = t.tick(candles)
    approved = [d for d in report.decisions if d["kind"] == "entry" and d["approved"]]
    assert approved and all(d["reasons"][0].startswith("sized") for d in approved)
    with t.engine.ledger.read() as s:
        rejected = s.scalars(select(Order).where(Order.status == "rejected")).all()
    assert rejected and all(json.loads(o.reasons) for o in rejected)


def test_competing_entries_on_one_bar_go_in_the_bandits_order(tmp_path: Path, monkeypatch) -> None:
    install(monkeypatch, Script(entries={"BTC-USDT": {1}}))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    coord = Coordinator(ledger, audit_dir=tmp_path / "audit")
    t = Trader(ExecutionEngine(ledger, PaperBroker(ledger)), coord, [("a", {}), ("b", {}), ("c", {})],
               catch_up_bars=10)
    report = t.tick({"BTC-USDT": bars("BTC-USDT", [100.0] * 3)})
    [draw] = [r for r in read_audit(tmp_path / "audit", "conflict_log") if r["decision"] == "bandit"]
    ranking = [r["strategy"] for r in draw["ranking"]]
    assert sorted(ranking) == ["a", "b", "c"]
    assert [d["strategy"] for d in report.decisions] == ranking  # submitted best first


def test_hardstop_tick_exits_a_held_position_and_enters_nothing(tmp_path: Path, monkeypatch) -> None:
    install(monkeypatch, Script(entries={"BTC-USDT": {1, 4}, "ETH-USDT": {4}}, exits={"BTC-USDT": {3}}))
    t = Trader(trader(tmp_path).engine, trader(tmp_path).coordinator, [("scripted", {})], catch_up_bars=50)
    btc, eth = [100.0] * 3, [10.0] * 3
    first = t.tick({"BTC-USDT": bars("BTC-USDT", btc), "ETH-USDT": bars("ETH-USDT", eth)})
    assert [d["status"] for d in first.decisions] == ["filled"]  # BTC held before the switch
    t.engine.set_hardstop(True, "test")
    btc, eth = btc + [100.0, 100.0], eth + [10.0, 10.0]
    report = t.tick({"BTC-USDT": bars("BTC-USDT", btc), "ETH-USDT": bars("ETH-USDT", eth)})
    exits = [d for d in report.decisions if d["kind"] == "exit"]
    entries = [d for d in report.decisions if d["kind"] == "entry"]
    assert len(exits) == 1 and exits[0]["status"] == "filled"  # the exit went through
    assert len(entries) == 2 and not any(d["approved"] for d in entries)  # both entries refused
    assert all(any("HARDSTOP" in r for r in d["reasons"]) for d in entries)
    assert venue_orders(t) == 2  # the first buy and the exit, nothing else


def test_portfolio_asset_runs_a_tick_and_plots(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_BARS", "1200")
    monkeypatch.setenv("NETTRACE_TRADER_CATCH_UP_BARS", "500")
    from datetime import UTC, datetime

    from nettrace_dagster.market import sim

    # The sim is live: a fixed "now", so no bar closes between the three symbols' refreshes.
    monkeypatch.setattr(sim, "_utc_now", lambda: datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC))
    from assets.market import candles
    from assets.portfolio import portfolio
    from nettrace_dagster.partitions import symbol_partitions
    from nettrace_dagster.resources import build_resources
    from nettrace_dagster.settings import load_settings

    resources = build_resources(load_settings())
    assert resources["execution"].catch_up_bars == 500
    instance = dg.DagsterInstance.ephemeral()
    for symbol in symbol_partitions.get_partition_keys():
        assert dg.materialize([candles], partition_key=symbol, resources=resources, instance=instance).success
    result = dg.materialize([candles, portfolio], selection=[portfolio], resources=resources, instance=instance)
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.step_materialization_data.materialization.metadata
    assert meta["summary"].value.startswith("paper: equity $") and "500 bar(s)" in meta["summary"].value
    assert "data:image/png;base64," in meta["equity_curve"].value
    assert set(meta["rule_status"].value) >= {"entries_allowed", "daily_pnl", "drawdown"}
    curve = result.output_for_node("portfolio")
    assert curve.height >= 1 and curve["equity"][-1] > 0
    # The picture and the curve are in market time: bar times within the candles' span, from the
    # starting capital, ending at the account's equity now.
    assert "equity in market time" in meta["equity_curve"].value
    stored = [resources["market"].lake.read_candles(s)["timestamp"] for s in symbol_partitions.get_partition_keys()]
    assert min(s.min() for s in stored) <= curve["timestamp"].min()
    assert curve["timestamp"].max() == max(s.max() for s in stored)
    assert curve["equity"][0] == resources["execution"].engine().status()["principal"]
    assert curve["equity"][-1] == pytest.approx(meta["equity"].value, rel=1e-9)


def test_trading_tick_job_and_its_trigger() -> None:
    from jobs.trading import trading_tick
    from sensors.trading import trading_on_new_candles

    assert trading_tick.name == "trading_tick"
    assert trading_on_new_candles.job_name == "trading_tick"
    assert trading_on_new_candles.default_status == dg.DefaultSensorStatus.RUNNING


def test_status_and_hardstop_commands(home: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.cli import main

    assert main(["status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["mode"] == "paper" and st["equity"] == 100.0 and not st["hardstop"]["on"]
    assert set(st["coordinator"]) == {"reservations", "compute_slots", "activities", "api_calls"}
    assert main(["hardstop", "on", "--reason", "maintenance"]) == 0
    assert "HARDSTOP on" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hardstop"]["reason"] == "maintenance"
    assert main(["hardstop", "off", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"hardstop": False, "changed": True, "ok": True,
                                                   "reasons": ["nettrace hardstop off"], "audit_pending": 0}
    assert main(["hardstop", "on", "--reset-peak"]) == 2
    assert "--reset-peak only goes with 'off'" in capsys.readouterr().err
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.5")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NETTRACE_RULE_MIN_CONFIDENCE=0.5 loosens Rule 2" in err
