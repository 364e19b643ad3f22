"""The coordinator: reservations by priority and TTL, compute quotas, the API budget, the conflict
rules, the Sharpe bandit, and the audit trail (queryable in DuckDB)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from nettrace_dagster.coordinator import bandit
from nettrace_dagster.coordinator.api_budget import ApiBudgetExhausted
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.coordinator.quotas import RUN_TAG_KEY, RUN_TAG_LIMITS, run_tags
from nettrace_dagster.execution.db import Ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coord(tmp_path: Path, clock: Clock) -> Coordinator:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Coordinator(ledger, audit_dir=tmp_path / "audit", clock=clock, sleep=clock.sleep)


def test_reservations_never_touch_the_reserve(coord: Coordinator) -> None:
    assert coord.reserve("a", "paper", 60).granted
    assert coord.reserve("b", "paper", 30).granted  # 90 of 100: the $10 floor is left
    denied = coord.reserve("c", "paper", 0.5)
    assert not denied.granted and "reserve floor $10.00" in denied.reasons[0]


def test_higher_priority_preempts_newest_lower_first(coord: Coordinator) -> None:
    old = coord.reserve("paper-old", "paper", 40)
    new = coord.reserve("paper-new", "paper", 40)
    assert not coord.reserve("bt", "backtest", 20).granted  # lower priority cannot preempt
    live = coord.reserve("live", "live", 20)
    assert live.granted and live.preempted == (new.reservation_id,)
    assert coord.is_active(old.reservation_id) and not coord.is_active(new.reservation_id)
    exit_ = coord.reserve("exit", "exit", 70)
    assert exit_.granted and set(exit_.preempted) == {old.reservation_id}
    assert not coord.reserve("live2", "live", 30).granted  # exits and live outrank it


def test_order_bound_reservations_are_never_preempted(coord: Coordinator, tmp_path: Path) -> None:
    engine = ExecutionEngine(coord.ledger, _NeverFills(coord.ledger), clock=coord.clock)
    assert engine.submit(Intent("s", "BTC-USDT", "entry", 100.0, "k", 0.9, 3)).status == "unknown"
    assert not coord.reserve("exit", "exit", 90).granted  # 25 $ are held by the order in flight
    assert coord.reserve("exit", "exit", 65).granted


def test_ttl_expiry_and_release(coord: Coordinator, clock: Clock) -> None:
    r = coord.reserve("a", "paper", 90, ttl_s=30)
    assert not coord.reserve("b", "paper", 10).granted
    clock.t += 31
    assert not coord.is_active(r.reservation_id)
    b = coord.reserve("b", "paper", 90)
    assert b.granted and coord.release(b.reservation_id) and not coord.release(b.reservation_id)


def test_hardstop_allows_only_exit_reservations(coord: Coordinator) -> None:
    engine = ExecutionEngine(coord.ledger, PaperBroker(coord.ledger), clock=coord.clock)
    engine.set_hardstop(True, "test")
    assert not coord.reserve("p", "paper", 1).granted and not coord.reserve("l", "live", 1).granted
    assert coord.reserve("x", "exit", 1).granted
    assert not coord.may_run_stage("COLD").allowed and coord.may_run_stage("LIMITED").allowed


def test_compute_quotas(coord: Coordinator, clock: Clock) -> None:
    slots = [coord.acquire_slot("backtest", f"bt{i}", ttl_s=60) for i in range(4)]
    assert [s.granted for s in slots] == [True, True, True, False]
    assert coord.release_slot(slots[0].slot_id)
    assert coord.acquire_slot("backtest", "bt4").granted
    clock.t += 61  # the first leases expire: a killed holder frees its slot
    assert coord.acquire_slot("backtest", "bt5").granted
    assert all(coord.acquire_slot("paper", f"p{i}").granted for i in range(5))
    assert not coord.acquire_slot("paper", "p5").granted
    assert all(coord.acquire_slot("live", f"l{i}").granted for i in range(20))
    assert run_tags("backtest") == {RUN_TAG_KEY: "backtest"}
    assert {(d["value"], d["limit"]) for d in RUN_TAG_LIMITS} == {("backtest", 3), ("paper", 5)}


def test_api_budget_minute_and_rolling_hour(tmp_path: Path, clock: Clock) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'api.db'}")
    clock.t = 1_800_000_000.0 - (1_800_000_000.0 % 60)  # the start of a minute
    coord = Coordinator(ledger, api_limits=(5, 8), clock=clock, sleep=clock.sleep, audit_dir=tmp_path)
    assert [coord.api_call("binance") for _ in range(5)] == [0.0] * 5
    assert coord.api_call("binance") == pytest.approx(60.0)  # waits for the next minute
    assert clock.slept == [pytest.approx(60.0)]
    for _ in range(2):
        coord.api_call("binance")
    waited = coord.api_call("binance", timeout_s=4000)  # 8 in the rolling hour: until minute 0 leaves
    assert waited == pytest.approx(3540.0)
    assert coord.api_call("kraken") == 0.0  # budgets are per exchange
    with pytest.raises(ApiBudgetExhausted):
        for _ in range(10):
            coord.api_call("binance", timeout_s=1.0)
    snap = coord.snapshot()["api_calls"]
    assert snap["limits"] == {"per_minute": 5, "per_hour": 8} and snap["binance"]["hour"] <= 8


def test_deploy_queues_optimization_and_one_deploy_at_a_time(coord: Coordinator) -> None:
    opt = coord.begin("optimization", "optuna-1")
    assert opt.status == "running"
    deploy = coord.begin("deploy", "release-7")
    assert deploy.status == "running" and deploy.affected == (opt.activity_id,)
    assert coord.activity_status(opt.activity_id).status == "queued"
    assert coord.begin("optimization", "optuna-2").status == "queued"
    assert coord.begin("deploy", "release-8").status == "refused"
    ended = coord.end(deploy.activity_id)
    assert set(ended.affected) >= {opt.activity_id}
    assert coord.activity_status(opt.activity_id).status == "running"


def test_hardstop_pauses_cold_and_warm(coord: Coordinator) -> None:
    engine = ExecutionEngine(coord.ledger, PaperBroker(coord.ledger), clock=coord.clock)
    warm = coord.begin("warm", "candidate-3")
    engine.set_hardstop(True, "test")
    assert coord.activity_status(warm.activity_id).status == "paused"
    assert coord.begin("cold", "candidate-4").status == "refused"
    assert coord.begin("discovery", "arxiv").status == "running"
    engine.set_hardstop(False)
    assert coord.activity_status(warm.activity_id).status == "running"


def test_one_trading_tick_per_account(coord: Coordinator, clock: Clock) -> None:
    first = coord.begin("trading", "trader:main", ttl_s=60)
    assert coord.begin("trading", "trader:main").status == "refused"
    assert coord.begin("trading", "trader:sleeve-warm").status == "running"
    clock.t += 61  # a dead tick's lease expires
    assert coord.begin("trading", "trader:main").status == "running"
    assert coord.end(first.activity_id).status == "done"


def test_bandit_prefers_higher_sharpe_and_is_reproducible() -> None:
    returns = {"good": [0.02, 0.015, 0.03, 0.01, 0.025] * 4, "bad": [-0.01, 0.005, -0.02, 0.0] * 5, "new": []}
    assert bandit.rank(returns, "bar:1") == bandit.rank(returns, "bar:1")
    wins = sum(bandit.rank(returns, f"bar:{i}")[0][0] == "good" for i in range(200))
    assert wins > 150
    order = [[n for n, _ in bandit.rank(returns, f"bar:{i}")] for i in range(200)]
    assert any(o.index("new") < o.index("bad") for o in order)  # an untested strategy is still explored
    assert any(o.index("new") > o.index("bad") for o in order)  # … but not always preferred


def test_every_decision_is_audited_and_queryable_in_duckdb(coord: Coordinator, tmp_path: Path) -> None:
    coord.reserve("a", "paper", 10)
    coord.reserve("b", "paper", 1000)
    coord.acquire_slot("backtest", "bt")
    coord.begin("deploy", "r1")
    coord.settle(["x", "y"], seed="bar:1")
    path = tmp_path / "audit" / "conflict_log.jsonl"
    rows = duckdb.sql(f"SELECT decision, count(*) AS n FROM read_json_auto('{path}') GROUP BY 1").fetchall()
    counts = dict(rows)
    assert counts == {"reservation": 2, "compute_slot": 1, "activity_begin": 1, "bandit": 1}
    granted = duckdb.sql(f"SELECT granted FROM read_json_auto('{path}') WHERE decision = 'reservation' "
                         "ORDER BY ts").fetchall()
    assert granted == [(True,), (False,)]


class _NeverFills(PaperBroker):
    """A venue that never answers: orders stay in flight (unknown)."""

    def place(self, request):  # noqa: ANN001, ANN201
        from nettrace_dagster.execution.broker import BrokerUnknown
        raise BrokerUnknown("no answer")

    def fetch(self, client_order_id, symbol):  # noqa: ANN001, ANN201
        return None
