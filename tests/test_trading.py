"""The trading loop: ticks on simulated candles, idempotent replays, the portfolio asset, the
trading_tick schedule, and the `nettrace status` / `nettrace hardstop` commands."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.db import Ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.models import Order, PaperOrder
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.trading.trader import Trader, active_strategies

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


class CrashAfter(PaperBroker):
    """The venue fills the n-th order, then the process 'dies' before the engine books it."""

    def __init__(self, ledger: Ledger, n: int) -> None:
        super().__init__(ledger)
        self.left = n

    def place(self, request):  # noqa: ANN001, ANN201
        state = super().place(request)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt("crash")
        return state


def test_a_crashed_tick_resumes_to_the_same_ledger_as_a_clean_one(tmp_path: Path, candles: dict) -> None:
    clean = trader(tmp_path / "clean")
    clean.tick(candles)
    ledger = Ledger(f"sqlite:///{tmp_path / 'crash' / 'ledger.db'}")
    crashing = Trader(ExecutionEngine(ledger, CrashAfter(ledger, 7)), Coordinator(ledger), catch_up_bars=800)
    with pytest.raises(KeyboardInterrupt):
        crashing.tick(candles)
    resumed = trader(tmp_path / "crash")  # a new process: reconcile, then carry on from the cursor
    report = resumed.tick(candles)
    assert report.reconcile["booked"] and 0 < report.bars < 800
    assert venue_orders(resumed) == venue_orders(clean)
    assert resumed.engine.status()["orders"] == clean.engine.status()["orders"]
    assert resumed.engine.status()["equity"] == pytest.approx(clean.engine.status()["equity"])


def test_entries_respect_the_rules_and_competing_strategies_go_through_the_bandit(tmp_path, candles) -> None:
    t = trader(tmp_path)
    report = t.tick(candles)
    for d in report.decisions:
        if d["kind"] == "entry" and d["approved"]:
            assert d["reasons"][0].startswith("sized")
    with t.engine.ledger.read() as s:
        rejected = s.scalars(select(Order).where(Order.status == "rejected")).all()
    assert all(json.loads(o.reasons) for o in rejected)
    assert {name for name, _ in active_strategies()} >= {"sma_cross"}


def test_one_tick_at_a_time(tmp_path: Path, candles: dict) -> None:
    t = trader(tmp_path)
    lease = t.coordinator.begin("trading", "trader:main")
    skipped = t.tick(candles)
    assert not skipped.ran and "already trading" in skipped.reasons[0]
    t.coordinator.end(lease.activity_id)
    assert t.tick(candles).ran


def test_hardstop_tick_only_exits(tmp_path: Path, candles: dict) -> None:
    t = trader(tmp_path)
    t.engine.set_hardstop(True, "test")
    report = t.tick(candles)
    assert all(d["kind"] == "exit" or not d["approved"] for d in report.decisions)
    assert venue_orders(t) == 0


def test_portfolio_asset_runs_a_tick_and_plots(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_BARS", "1200")
    monkeypatch.setenv("NETTRACE_TRADER_CATCH_UP_BARS", "500")
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


def test_trading_tick_job_and_schedule() -> None:
    from jobs.trading import trading_tick, trading_tick_schedule

    assert trading_tick.name == "trading_tick"
    assert trading_tick_schedule.cron_schedule == "* * * * *"
    assert trading_tick_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


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
                                                   "reasons": ["nettrace hardstop off"]}
    assert main(["hardstop", "on", "--reset-peak"]) == 2
    assert "--reset-peak only goes with 'off'" in capsys.readouterr().err
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.5")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NETTRACE_RULE_MIN_CONFIDENCE=0.5 loosens Rule 2" in err
