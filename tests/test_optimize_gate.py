"""The gate's statistics against independent oracles: the deflated Sharpe ratio against the worked
example of Bailey & López de Prado (2014) and a Monte Carlo of the expected maximum; PBO against a
plain-Python CSCV over raw returns; and the failure strings a trader reads."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from nettrace_dagster.optimize import gate as G


def test_dsr_matches_the_papers_worked_example() -> None:
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annual SR
    # 2.5 over 1,250 daily returns (skew −3, kurtosis 10), 100 trials whose annual SRs vary by
    # 0.5 → SR0 ≈ 0.1132 a day and DSR ≈ 0.9004.
    sr, var = 2.5 / math.sqrt(250), 0.5 / 250
    assert G.expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=5e-4)
    assert G.deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, var) == pytest.approx(0.9004, abs=5e-4)


def test_expected_max_sharpe_is_the_mean_maximum_of_skill_less_trials() -> None:
    rng = np.random.default_rng(1)
    for n in (10, 100, 1000):
        simulated = rng.standard_normal((4000, n)).max(axis=1).mean()
        assert G.expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.03)
    assert G.expected_max_sharpe(1, 1.0) == 0.0  # one trial: no selection to deflate


def test_more_trials_deflate_the_same_sharpe_more() -> None:
    values = [G.deflated_sharpe_ratio(0.05, 2000, 0.0, 3.0, n, 0.0004) for n in (1, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[0] > 0.95 > values[-1]


def test_moments_are_numpys_and_the_textbooks() -> None:
    r = np.random.default_rng(3).standard_t(5, 5000) * 0.01
    sr, skew, kurt = G.moments(r)
    z = (r - r.mean()) / r.std()
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert skew == pytest.approx((z ** 3).mean()) and kurt == pytest.approx((z ** 4).mean())


def naive_pbo(returns: np.ndarray, n_blocks: int) -> float:
    """CSCV from the definition, on raw per-bar returns (T × N), with loops."""
    t, n = returns.shape
    blocks = np.array_split(np.arange(t), n_blocks)
    below = 0
    splits = list(combinations(range(n_blocks), n_blocks // 2))
    for chosen in splits:
        rows_in = np.concatenate([blocks[b] for b in chosen])
        rows_out = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])

        def sharpe(rows: np.ndarray, j: int) -> float:
            x = returns[rows, j]
            return float(x.mean() / x.std()) if x.std() > 0 else 0.0

        is_sr = [sharpe(rows_in, j) for j in range(n)]
        oos_sr = [sharpe(rows_out, j) for j in range(n)]
        star = int(np.argmax(is_sr))
        rank = sum(v < oos_sr[star] for v in oos_sr) + (sum(v == oos_sr[star] for v in oos_sr) + 1) / 2
        omega = rank / (n + 1)
        below += math.log(omega / (1 - omega)) <= 0
    return below / len(splits)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbo_from_block_stats_equals_cscv_on_raw_returns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.01, (400, 7)) + rng.normal(0.0, 0.002, 7)
    stats = np.stack([G.block_stats(returns[:, j], 8) for j in range(7)])
    assert G.pbo_cscv(stats)[0] == pytest.approx(naive_pbo(returns, 8))


def test_pbo_is_low_for_a_real_edge_and_near_half_for_noise() -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.01, (2000, 30))
    pbo_noise = G.pbo_cscv(np.stack([G.block_stats(noise[:, j], 10) for j in range(30)]))[0]
    edged = noise.copy()
    edged[:, 4] += 0.004  # one configuration is truly better in every period
    pbo_edge = G.pbo_cscv(np.stack([G.block_stats(edged[:, j], 10) for j in range(30)]))[0]
    assert pbo_edge == 0.0
    assert 0.25 < pbo_noise < 0.9


def test_failed_tests_name_the_test_and_say_by_how_much() -> None:
    verdict = G.GateVerdict([G.check("dsr", 0.41, 0.95), G.check("pbo", 0.62, 0.5, "<="),
                             G.check("oos_sharpe", 1.3, 0.5)])
    assert not verdict.passed
    assert verdict.failed_tests == ["dsr: 0.41 < 0.95", "pbo: 0.62 > 0.50"]
    assert G.GateVerdict([G.check("oos_sharpe", 1.3, 0.5)]).passed
    # just below the line: the digits that differ are shown, never "0.95 < 0.95"
    assert G.check("dsr", 0.9497, 0.95).failure() == "dsr: 0.9497 < 0.95"
    assert not G.GateVerdict([]).passed  # no evidence is no pass
    assert not G.check("dsr", float("nan"), 0.95).passed
