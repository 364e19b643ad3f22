"""The coordinator and the capital rules around it: reservations by priority and TTL (as the engine
makes them), compute quotas, the API budget, the conflict rules, the Sharpe bandit, and the audit
trail (queryable in DuckDB)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select

from nettrace_dagster.coordinator import bandit
from nettrace_dagster.coordinator.api_budget import ApiBudgetExhausted
from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.coordinator.quotas import RUN_TAG_KEY, RUN_TAG_LIMITS, run_tags
from nettrace_dagster.coordinator.reservations import PRIORITIES, reserve_in
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger import accounting as acc
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Activity, Reservation, live_reservation
from nettrace_dagster.rules import Rules


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
    with ledger.tx() as s:  # the account the reservations are made in
        acc.ensure_account(s, "main", 100.0, clock())
    return Coordinator(ledger, audit_dir=tmp_path / "audit", clock=clock, sleep=clock.sleep)


def reserve(coord: Coordinator, owner: str, kind: str, amount: float, ttl_s: float | None = 60.0):  # noqa: ANN201
    """One reservation the way the engine makes it: inside a ledger transaction, on the account
    it has just refreshed for that priority."""
    with coord.ledger.tx() as s:
        r = acc.refresh(s, Rules(), "main", None, coord.clock(), priority=PRIORITIES[kind])
        return reserve_in(s, Rules(), "main", owner, kind, amount, coord.clock(), ttl_s, None, r)


def active(coord: Coordinator, reservation_id: int | None) -> bool:
    with coord.ledger.read() as s:
        res = s.get(Reservation, reservation_id)
        return bool(res and s.scalar(select(func.count()).select_from(Reservation).where(
            Reservation.id == reservation_id, live_reservation(coord.clock()))))


def test_reservations_never_touch_the_reserve(coord: Coordinator) -> None:
    assert reserve(coord, "a", "paper", 60).granted
    assert reserve(coord, "b", "paper", 30).granted  # 90 of 100: the $10 floor is left
    denied = reserve(coord, "c", "paper", 0.5)
    assert not denied.granted and "reserve floor $10.00" in denied.reasons[0]


def test_higher_priority_preempts_newest_lower_first(coord: Coordinator) -> None:
    old = reserve(coord, "paper-old", "paper", 40)
    new = reserve(coord, "paper-new", "paper", 40)
    assert not reserve(coord, "bt", "backtest", 20).granted  # lower priority cannot preempt
    live = reserve(coord, "live", "live", 20)
    assert live.granted and live.preempted == (new.reservation_id,)
    assert active(coord, old.reservation_id) and not active(coord, new.reservation_id)
    exit_ = reserve(coord, "exit", "exit", 70)
    assert exit_.granted and set(exit_.preempted) == {old.reservation_id}
    assert not reserve(coord, "live2", "live", 30).granted  # exits and live outrank it


def test_order_bound_reservations_are_never_preempted(coord: Coordinator, tmp_path: Path) -> None:
    engine = ExecutionEngine(coord.ledger, _NeverFills(coord.ledger), clock=coord.clock)
    assert engine.submit(Intent("s", "BTC-USDT", "entry", 100.0, "k", 0.9, 3)).status == "unknown"
    assert not reserve(coord, "exit", "exit", 90).granted  # 25 $ are held by the order in flight
    assert reserve(coord, "exit", "exit", 65).granted


def test_ttl_expiry(coord: Coordinator, clock: Clock) -> None:
    r = reserve(coord, "a", "paper", 90, ttl_s=30)
    assert not reserve(coord, "b", "paper", 10).granted
    clock.t += 31
    assert not active(coord, r.reservation_id)
    assert reserve(coord, "b", "paper", 90).granted


def test_hardstop_allows_only_exit_reservations_and_pauses_cold_and_warm(coord: Coordinator) -> None:
    engine = ExecutionEngine(coord.ledger, PaperBroker(coord.ledger), clock=coord.clock)
    engine.set_hardstop(True, "test")
    assert not reserve(coord, "p", "paper", 1).granted and not reserve(coord, "l", "live", 1).granted
    assert reserve(coord, "x", "exit", 1).granted
    assert coord.begin("cold", "candidate-4").status == "refused"
    assert coord.begin("warm", "candidate-5").status == "refused"
    assert coord.begin("limited", "candidate-6").status == "running"
    assert coord.begin("discovery", "arxiv").status == "running"


def test_compute_quotas_are_dagster_run_queue_limits() -> None:
    assert run_tags("backtest") == {RUN_TAG_KEY: "backtest"}
    assert {(d["value"], d["limit"]) for d in RUN_TAG_LIMITS} == {("backtest", 3), ("paper", 5)}
    with pytest.raises(ValueError, match="unknown compute kind"):
        run_tags("gpu")


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


def status_of(coord: Coordinator, activity_id: int | None) -> str:
    with coord.ledger.read() as s:
        return s.get(Activity, activity_id).status


def test_deploy_queues_optimization_and_one_deploy_at_a_time(coord: Coordinator) -> None:
    opt = coord.begin("optimization", "optuna-1")
    assert opt.status == "running"
    deploy = coord.begin("deploy", "release-7")
    assert deploy.status == "running" and deploy.affected == (opt.activity_id,)
    assert status_of(coord, opt.activity_id) == "queued"
    assert coord.begin("optimization", "optuna-2").status == "queued"
    assert coord.begin("deploy", "release-8").status == "refused"
    ended = coord.end(deploy.activity_id)
    assert set(ended.affected) >= {opt.activity_id}
    assert status_of(coord, opt.activity_id) == "running"


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
    coord.begin("deploy", "r1")
    coord.begin("deploy", "r2")
    coord.settle(["x", "y"], seed="bar:1")
    path = tmp_path / "audit" / "conflict_log.jsonl"
    rows = duckdb.sql(f"SELECT decision, count(*) AS n FROM read_json_auto('{path}') GROUP BY 1").fetchall()
    assert dict(rows) == {"activity_begin": 2, "bandit": 1}
    statuses = duckdb.sql(f"SELECT status FROM read_json_auto('{path}') WHERE decision = 'activity_begin' "
                          "ORDER BY ts").fetchall()
    assert statuses == [("running",), ("refused",)]


class _NeverFills(PaperBroker):
    """A venue that never answers: orders stay in flight (unknown)."""

    def place(self, request):  # noqa: ANN001, ANN201
        from nettrace_dagster.execution.broker import BrokerUnknown
        raise BrokerUnknown("no answer")

    def fetch(self, client_order_id, symbol):  # noqa: ANN001, ANN201
        return None
