"""The promotion pipeline's transitions (each passing and failing), sleeves trading through the
execution layer with their own P&L, approval, and transactional stage changes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from nettrace_dagster.audit import read_audit
from nettrace_dagster.ledger.models import Capital, Flag, Order
from nettrace_dagster.ledger.promotion_tables import Candidate, CandidateDecision
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion import pipeline as pipeline_module
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.promotion.pipeline import relative_edge
from nettrace_dagster.promotion.store import CandidateError
from nettrace_dagster.trading.sleeves import tick_sleeves
from tests.promo_helpers import install_param_script, market, param_set, world

UP = [100.0, 100.0, 101.0, 102.0, 104.0, 106.0, 106.0, 106.0]  # bought at bar 1, sold at bar 5: +6 %
DOWN = [100.0, 100.0, 99.0, 97.0, 95.0, 94.0, 94.0, 94.0]


def test_gate_failure_is_rejected_with_the_failed_tests(tmp_path: Path) -> None:
    *_, pipe, _ = world(tmp_path)
    cid, new = pipe.submit(param_set([1], [5]), regime="BULL", source="optimized_params[BULL]",
                           gate={"passed": False, "failed_tests": ["pbo 0.62 > 0.50"]})
    assert new
    view = pipe.candidate(cid)
    assert view.stage == "REJECTED" and view.failed_tests() == ["pbo 0.62 > 0.50"]
    assert "pbo 0.62 > 0.50" in view.history[0]["reason"]
    assert pipe.submit(param_set([1], [5]), gate={"passed": False, "failed_tests": ["x"]}) == (cid, False)


@pytest.mark.parametrize(("sharpe", "stage"), [(0.8, "WARM"), (0.5, "WARM"), (0.49, "REJECTED")])
def test_cold_passes_at_the_sharpe_threshold_and_fails_below(tmp_path: Path, sharpe: float, stage: str) -> None:
    seen = []
    *_, pipe, _ = world(tmp_path, evaluator=lambda ps, files: seen.append(ps) or {"sharpe": sharpe})
    cid, _ = pipe.submit(param_set([1], [5]))
    [made] = pipe.advance()
    assert made["to"] == stage and pipe.candidate(cid).stage == stage
    assert seen and seen[0]["strategies"]["scripted"] == {"entries": [1], "exits": [5]}
    assert pipe.candidate(cid).evidence["cold"]["sharpe"] == sharpe


def test_cold_is_paused_by_hardstop_and_resumes(tmp_path: Path) -> None:
    _, engine, _, pipe, _ = world(tmp_path)
    cid, _ = pipe.submit(param_set([1], [5]))
    engine.set_hardstop(True, "test")
    assert pipe.advance() == [] and pipe.candidate(cid).stage == "COLD"
    assert "HARDSTOP" in pipe.candidate(cid).evidence["paused"]
    engine.set_hardstop(False, "test")
    assert pipe.advance()[0]["to"] == "WARM"


def _to_warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: PromotionConfig | None = None):
    install_param_script(monkeypatch)
    ledger, engine, coord, pipe, clock = world(tmp_path, config)
    cid, _ = pipe.submit(param_set([1], [5]))
    assert pipe.advance()[0]["to"] == "WARM"
    return ledger, engine, coord, pipe, clock, cid


def test_warm_passes_when_the_candidate_beats_its_baseline_twin(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _to_warm(tmp_path, monkeypatch)
    sleeves = pipe.sleeves()
    assert [s.role for s in sleeves] == ["warm", "warm_baseline"] and sleeves[0].capital == 100.0
    reports = tick_sleeves(engine, coord, market(UP), sleeves, catch_up_bars=50)
    twin = sleeves[1].account
    assert twin.startswith("main:warm-base:") and set(reports) == {"main", "main:c1:warm", twin}
    assert pipe.due() == []  # the 4 h window has not passed
    clock.t += 4 * 3600
    [made] = pipe.advance()
    ev = pipe.candidate(cid).evidence["warm"]
    # Hand computation: $25 budget (25 % of $100) → $24.975 after the fee, bought at 100 × 1.0005,
    # sold at 106 × 0.9995, 0.1 % fee each side.
    qty = 25 / 1.001 / (100 * 1.0005)
    pnl = qty * 106 * 0.9995 * (1 - 0.001) - 25
    assert ev["candidate_pnl"] == pytest.approx(pnl, rel=1e-9) and ev["baseline_pnl"] == 0.0
    assert ev["edge"] == pytest.approx(pnl / 0.1) and made["to"] == "LIMITED"
    with ledger.read() as s:  # the orders went through the execution layer in the sleeve's account
        orders = s.scalars(select(Order).where(Order.account == "main:c1:warm")).all()
        assert [o.status for o in orders] == ["filled", "filled"]
        assert s.scalars(select(Order).where(Order.account == "main")).all() == []
        assert s.get(Capital, "main").cash == 100.0  # the account itself is untouched


def test_warm_fails_when_the_candidate_is_worse(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _to_warm(tmp_path, monkeypatch)
    tick_sleeves(engine, coord, market(DOWN), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    [made] = pipe.advance()
    assert made["to"] == "REJECTED" and "edge" in made["reason"]
    assert pipe.candidate(cid).evidence["warm"]["candidate_pnl"] < 0
    assert pipe.sleeves() == []  # a rejected candidate's sleeves stop trading


def test_a_candidate_that_does_not_trade_has_no_evidence(tmp_path: Path, monkeypatch) -> None:
    install_param_script(monkeypatch)
    ledger, engine, coord, pipe, clock = world(tmp_path)
    in_force_bad = param_set([1], [5])
    with ledger.tx() as s:  # the baseline loses on DOWN; the idle candidate is "better" but made no trade
        in_force.activate_in(s, in_force_bad, by="test", reason="setup", now=clock())
    cid, _ = pipe.submit(param_set([], []))
    pipe.advance()
    tick_sleeves(engine, coord, market(DOWN), pipe.sleeves(), catch_up_bars=50)
    # no fill in the window: inconclusive, so the window runs again (twice by default), then it is
    # rejected for lack of evidence
    for n in (1, 2):
        clock.t += 4 * 3600
        [made] = pipe.advance()
        assert made["to"] == "WARM" and f"extended ({n} of 2)" in made["reason"]
        assert pipe.candidate(cid).stage == "WARM" and pipe.due() == []
        assert [s.role for s in pipe.sleeves()] == ["warm", "warm_baseline"]  # it goes on trading
    clock.t += 4 * 3600
    [made] = pipe.advance()
    assert made["to"] == "REJECTED" and "no evidence" in made["reason"]
    assert [h["decision"] for h in pipe.candidate(cid).history] == ["enter", "pass", "extend", "extend", "fail"]


def test_an_extended_window_judges_the_trades_made_in_the_extension(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _to_warm(tmp_path, monkeypatch, PromotionConfig(max_extensions=1))
    clock.t += 4 * 3600
    [made] = pipe.advance()  # no tick yet: no fill, extended
    assert made["to"] == "WARM" and pipe.due() == []
    tick_sleeves(engine, coord, market(UP), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    [made] = pipe.advance()
    assert made["to"] == "LIMITED" and pipe.candidate(cid).evidence["warm"]["candidate_fills"] == 2


def test_no_extension_configured_rejects_at_the_first_empty_window(tmp_path: Path, monkeypatch) -> None:
    *_, pipe, clock, cid = _to_warm(tmp_path, monkeypatch, PromotionConfig(max_extensions=0))
    clock.t += 4 * 3600
    [made] = pipe.advance()
    assert made["to"] == "REJECTED" and "no evidence" in made["reason"]


def test_worse_or_equal_never_passes() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        base = rng.uniform(-50, 50)
        cand = base - abs(rng.gauss(0, 10)) * rng.random()
        assert relative_edge(cand, base, rng.uniform(1, 1000), 0.001) <= 0
    assert relative_edge(1.0, 0.0, 100.0, 0.001) == pytest.approx(10.0)  # floor: 0.1 % of capital
    assert relative_edge(-0.9, -1.0, 100.0, 0.001) == pytest.approx(0.1)  # loses 10 % less


def _through_warm(tmp_path, monkeypatch, **cfg):
    config = PromotionConfig(**cfg)
    ledger, engine, coord, pipe, clock, cid = _to_warm(tmp_path, monkeypatch, config)
    tick_sleeves(engine, coord, market(UP), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    assert pipe.advance()[0]["to"] == "LIMITED"
    return ledger, engine, coord, pipe, clock, cid


def test_limited_passes_to_full_and_the_set_comes_into_force(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _through_warm(tmp_path, monkeypatch, limited_fraction=0.5)
    sleeves = pipe.sleeves()
    assert [s.role for s in sleeves] == ["limited", "limited_baseline"] and sleeves[0].capital == 50.0
    longer = UP + [106.0, 107.0, 109.0, 111.0, 112.0, 112.0]
    _limited_trades(ledger, pipe, cid, [8], [12])  # its own rules
    tick_sleeves(engine, coord, market(longer), pipe.sleeves(), catch_up_bars=50)
    clock.t += 24 * 3600
    [made] = pipe.advance()
    assert made["to"] == "FULL", made
    view = pipe.candidate(cid)
    assert view.stages == ["COLD", "WARM", "LIMITED", "FULL"]
    current = in_force.current(ledger)
    assert current.candidate_id == cid and current.strategies["scripted"]["entries"] == [8]
    [rec] = [r for r in read_audit(tmp_path / "audit", "param_optimization") if r["event"] == "params_promote"]
    assert rec["candidate_id"] == cid and rec["replaced_in_force_id"] is None


def _limited_trades(ledger, pipe, cid: int, entries: list[int], exits: list[int]) -> None:
    """The LIMITED candidate's own scripted entries and exits (its sleeve and its ledger row)."""
    with ledger.tx() as s:
        c = s.get(Candidate, cid)
        c.param_set = json.dumps({**json.loads(c.param_set),
                                  "strategies": {"scripted": {"entries": entries, "exits": exits}}})


def test_limited_fails_below_fifteen_percent(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _through_warm(tmp_path, monkeypatch, limited_fraction=0.5)
    _limited_trades(ledger, pipe, cid, [8], [12])
    # the twin (the defaults) does not trade this market; the candidate buys at 106 and sells at
    # 106.2: +0.19 % before costs, a loss after 0.1 % fees and 5 bps slippage each side
    tick_sleeves(engine, coord, market(UP + [106.0, 106.1, 106.1, 106.2, 106.2, 106.2]), pipe.sleeves(),
                 catch_up_bars=50)
    clock.t += 24 * 3600
    [made] = pipe.advance()
    ev = pipe.candidate(cid).evidence["limited"]
    assert ev["candidate_fills"] == 2 and ev["baseline_pnl"] == 0.0 and ev["candidate_pnl"] < 0
    assert made["to"] == "REJECTED" and "edge" in made["reason"] and in_force.current(ledger).id is None


def test_approval_checkpoint_waits_then_approve_promotes(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _through_warm(tmp_path, monkeypatch, require_approval=True,
                                                            limited_fraction=0.5)
    with ledger.tx() as s:
        c = s.get(Candidate, cid)
        c.param_set = json.dumps({**json.loads(c.param_set), "strategies": {"scripted": {"entries": [8], "exits": [12]}}})
    tick_sleeves(engine, coord, market(UP + [106.0, 107.0, 109.0, 111.0, 112.0, 112.0]), pipe.sleeves(), catch_up_bars=50)
    clock.t += 24 * 3600
    assert pipe.advance()[0]["reason"] == "waiting for approval"
    assert pipe.candidate(cid).waiting_approval and pipe.due() == [] and in_force.current(ledger).id is None
    with pytest.raises(CandidateError, match="needs a reason"):
        pipe.reject(cid, "bob", "")
    with pytest.raises(CandidateError, match="no candidate 99"):
        pipe.approve(99, "alice")
    out = pipe.approve(cid, "alice", "looked at the sleeves")
    assert out["stage"] == "FULL" and in_force.current(ledger).candidate_id == cid
    [approve] = [h for h in pipe.candidate(cid).history if h["decision"] == "approve"]
    assert approve["by"] == "alice" and approve["reason"] == "looked at the sleeves"
    logged = [r for r in read_audit(tmp_path / "audit", "promotion_log") if r["event"] == "candidate_approve"]
    assert logged and logged[0]["by"] == "alice"
    with pytest.raises(CandidateError, match="only a LIMITED candidate"):
        pipe.approve(cid, "alice")  # FULL now


def test_a_failure_inside_a_transition_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _through_warm(tmp_path, monkeypatch, limited_fraction=0.5,
                                                            limited_min_edge=0.0001)
    with ledger.tx() as s:
        c = s.get(Candidate, cid)
        c.param_set = json.dumps({**json.loads(c.param_set), "strategies": {"scripted": {"entries": [8], "exits": [12]}}})
    tick_sleeves(engine, coord, market(UP + [106.0, 107.0, 109.0, 111.0, 112.0, 112.0]), pipe.sleeves(), catch_up_bars=50)
    clock.t += 24 * 3600

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline_module.in_force, "activate_in", boom)
    with ledger.read() as s:
        before = len(s.scalars(select(CandidateDecision)).all())
    with pytest.raises(RuntimeError, match="disk full"):
        pipe.advance()
    with ledger.read() as s:
        assert s.get(Candidate, cid).stage == "LIMITED"
        assert len(s.scalars(select(CandidateDecision)).all()) == before
    assert in_force.current(ledger).id is None


def test_a_sleeve_crossing_a_rule1_line_stops_itself_not_the_account(tmp_path: Path, monkeypatch) -> None:
    install_param_script(monkeypatch)
    ledger, engine, coord, pipe, clock = world(tmp_path)
    two = {"portfolio": {}, "strategies": {"a": {"entries": [1], "exits": [7]}, "b": {"entries": [1], "exits": [7]}}}
    pipe.submit(two)
    pipe.advance()
    crash = [100.0, 100.0, 60.0, 20.0, 5.0, 5.0, 5.0, 5.0]  # two 25 % positions lose ~95 %: drawdown ~47 %
    reports = tick_sleeves(engine, coord, market(crash), pipe.sleeves(), catch_up_bars=50)
    assert reports["main:c1:warm"].mark.snapshot.hardstop
    with ledger.read() as s:
        assert s.get(Flag, "hardstop:main:c1:warm").on
        assert s.get(Flag, "hardstop") is None  # the account trades on
    assert not engine.status()["hardstop"]["on"]
    assert not reports[pipe.sleeves()[1].account].mark.snapshot.hardstop


def test_the_pipeline_and_the_parameters_in_force_on_postgresql(pg_url: str, tmp_path: Path, monkeypatch) -> None:
    from nettrace_dagster.ledger.db import Ledger
    from nettrace_dagster.promotion import guardrails
    from nettrace_dagster.promotion.pipeline import Pipeline
    from tests.promo_helpers import Clock

    install_param_script(monkeypatch)
    ledger, clock = Ledger(pg_url), Clock()
    from nettrace_dagster.coordinator.core import Coordinator
    from nettrace_dagster.execution.engine import ExecutionEngine
    from nettrace_dagster.execution.paper import PaperBroker

    engine = ExecutionEngine(ledger, PaperBroker(ledger), clock=clock)
    coord = Coordinator(ledger, None, clock=clock)
    pipe = Pipeline(ledger, PromotionConfig(limited_fraction=0.5, limited_min_edge=0.0001), clock=clock,
                    cold_evaluator=lambda ps, files: {"sharpe": 2.0}, coordinator=coord)
    cid, _ = pipe.submit(param_set([1], [5]))
    assert pipe.advance()[0]["to"] == "WARM"
    tick_sleeves(engine, coord, market(UP), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    assert pipe.advance()[0]["to"] == "LIMITED"
    with ledger.tx() as s:
        c = s.get(Candidate, cid)
        c.param_set = json.dumps({**json.loads(c.param_set), "strategies": {"scripted": {"entries": [8], "exits": [12]}}})
    tick_sleeves(engine, coord, market(UP + [106.0, 107.0, 109.0, 111.0, 112.0, 112.0]), pipe.sleeves(), catch_up_bars=50)
    clock.t += 24 * 3600
    assert pipe.advance()[0]["to"] == "FULL"
    assert in_force.current(ledger).candidate_id == cid
    guardrails.rollback(ledger, by="test", reason="pg")
    assert in_force.current(ledger).kind == "rollback" and pipe.candidate(cid).stage == "ROLLED_BACK"
    ledger.dispose()


def test_warm_is_paused_by_hardstop_and_judged_once_it_is_off(tmp_path: Path, monkeypatch) -> None:
    ledger, engine, coord, pipe, clock, cid = _to_warm(tmp_path, monkeypatch)
    tick_sleeves(engine, coord, market(UP), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    engine.set_hardstop(True, "maintenance")
    assert pipe.advance() == [] and pipe.candidate(cid).stage == "WARM"
    assert "HARDSTOP" in pipe.candidate(cid).evidence["paused"]
    engine.set_hardstop(False, "done")
    assert pipe.advance()[0]["to"] == "LIMITED"


def test_candidates_finishing_limited_together_the_best_goes_full_the_other_restarts(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    install_param_script(monkeypatch)
    ledger, engine, coord, pipe, clock = world(tmp_path, PromotionConfig(limited_fraction=0.5))
    first, _ = pipe.submit(param_set([1], [5]))  # the lower id ...
    second, _ = pipe.submit(param_set([1], [4]))
    pipe.advance()
    tick_sleeves(engine, coord, market(UP), pipe.sleeves(), catch_up_bars=50)
    clock.t += 4 * 3600
    assert [m["to"] for m in pipe.advance()] == ["LIMITED", "LIMITED"]
    _limited_trades(ledger, pipe, first, [8], [10])  # ... earns less in LIMITED: out at 109, not 112
    _limited_trades(ledger, pipe, second, [8], [12])
    tick_sleeves(engine, coord, market(UP + [106.0, 107.0, 109.0, 111.0, 112.0, 112.0]), pipe.sleeves(),
                 catch_up_bars=50)
    old_account = pipe.candidate(first).evidence["limited_start"]["accounts"][0]
    clock.t += 24 * 3600
    made = {m["candidate"]: m for m in pipe.advance()}
    assert made[second]["to"] == "FULL" and in_force.current(ledger).candidate_id == second
    assert made[first]["to"] == "LIMITED" and "restarts" in made[first]["reason"]
    view = pipe.candidate(first)
    assert view.stage == "LIMITED" and view.stage_started_at == clock.t and view.history[-1]["decision"] == "restart"
    account = view.evidence["limited_start"]["accounts"][0]
    assert account != old_account and account in {s.account for s in pipe.sleeves()}
    assert pipe.due() == []  # a whole new window against the new set in force
