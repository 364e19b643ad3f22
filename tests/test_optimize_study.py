"""The study and the gate end to end on markets with a known answer: the study finds the planted
edge and the gate passes it; the best of many random strategies on a driftless walk is rejected;
the search never sees the held-out bars; a deploy makes the optimization wait."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nettrace_dagster.optimize import study as S
from nettrace_dagster.optimize.study import StudyConfig, optimize_regime
from tests.optimize_data import (
    PLANTED_HOLD,
    PLANTED_PHASE,
    PhaseStrategy,
    RandomStrategy,
    planted_market,
    random_walk,
)


def _bull(candles: dict[str, pl.DataFrame]) -> dict[str, np.ndarray]:
    return {s: np.full(df.height, "BULL") for s, df in candles.items()}


def test_the_study_finds_the_planted_edge_and_the_gate_passes_it() -> None:
    candles = {"X": planted_market(12_000, seed=1)}
    out = optimize_regime(candles, _bull(candles), StudyConfig("BULL", n_trials=40, seed=3,
                                                                strategies={"phase": PhaseStrategy}))
    found = out.param_set.strategies["phase"]
    # known-good: entries that trade only inside the planted lift (bars phase+1 … phase+hold)
    assert PLANTED_PHASE <= found["phase"] and found["phase"] + found["hold"] <= PLANTED_PHASE + PLANTED_HOLD, found
    assert out.trials == 40
    assert out.out_of_sample_return > 0.03 and out.oos_trades >= 50
    assert out.verdict.passed, out.verdict.failed_tests
    assert out.dsr > 0.95 and out.pbo < 0.5


def test_the_best_of_many_random_strategies_on_a_driftless_walk_is_rejected() -> None:
    candles = {"X": random_walk(12_000, seed=2)}
    cfg = StudyConfig("BULL", n_trials=60, seed=5, strategies={"coin": RandomStrategy}, search_portfolio=False)
    out = optimize_regime(candles, _bull(candles), cfg)
    assert out.in_sample_sharpe > 5  # the overfit looks good where it was chosen …
    assert not out.verdict.passed  # … and the gate stops it, saying why
    failed = {f.split(":")[0] for f in out.verdict.failed_tests}
    assert "dsr" in failed and failed & {"oos_sharpe", "oos_folds", "pbo"}, out.verdict.failed_tests
    assert all(f.split(":")[0] in {t.test for t in out.verdict.tests} for f in out.verdict.failed_tests)


def test_the_search_never_sees_the_held_out_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    candles = {"X": planted_market(6_000, seed=4)}
    cut_bars = []
    real = S.portfolio_backtest

    def spy(frames: dict[str, pl.DataFrame], *args: object, **kwargs: object) -> object:
        cut_bars.append(max(df["timestamp"].max() for df in frames.values()))
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(S, "portfolio_backtest", spy)
    study = S.run_study(candles, _bull(candles), StudyConfig("BULL", n_trials=6, strategies={"phase": PhaseStrategy},
                                                             oos_fraction=0.25))
    assert len(study.trials) == 6 and len(cut_bars) == 6
    first_held_out = candles["X"]["timestamp"][int(6_000 * 0.75)]
    assert all(last < first_held_out for last in cut_bars)


def test_the_gate_judges_the_same_with_the_studys_objective_as_with_a_new_one() -> None:
    candles = {"X": planted_market(6_000, seed=6)}
    labels = _bull(candles)
    cfg = StudyConfig("BULL", n_trials=8, seed=2, strategies={"phase": PhaseStrategy})
    study, objective = S.search(candles, labels, cfg)
    reused, fresh = S.evaluate(study, candles, labels, cfg, objective), S.evaluate(study, candles, labels, cfg)
    assert reused.history and reused.verdict.tests
    assert {**reused.to_value(), "finished_at": ""} == {**fresh.to_value(), "finished_at": ""}
    assert (reused.in_sample_sharpe, reused.in_sample_return) == (fresh.in_sample_sharpe, fresh.in_sample_return)
    other = StudyConfig("BULL", n_trials=8, seed=2, strategies={"phase": PhaseStrategy}, oos_fraction=0.5)
    assert S.evaluate(study, candles, labels, other, objective).in_sample_sharpe == \
        S.evaluate(study, candles, labels, other).in_sample_sharpe  # another split: not reused


def test_a_deploy_makes_the_optimization_wait(tmp_path: Path) -> None:
    from nettrace_dagster.coordinator.core import Coordinator
    from nettrace_dagster.ledger.db import Ledger
    from nettrace_dagster.optimize.coordination import activity_status, optimization_slot

    coordinator = Coordinator(Ledger(f"sqlite:///{tmp_path / 'ledger.db'}"), tmp_path / "audit")
    deploy = coordinator.begin("deploy", "release-1")
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the deploy ends while the optimization waits
        waits.append(seconds)
        coordinator.end(deploy.activity_id)

    ran = []
    with optimization_slot(coordinator, "opt-test", sleep=sleep) as wait:
        ran.append(True)
        second = coordinator.begin("deploy", "release-2")  # a deploy starts mid-search: publish must wait
        calls = len(waits)
        deploy = second
        wait()
        assert len(waits) == calls + 1
    assert ran and len(waits) == 2
    assert activity_status(coordinator, second.activity_id) == "done"
