"""The overfitting gate: out-of-sample evidence, the deflated Sharpe ratio and the probability of
backtest overfitting. A candidate that fails any test is never promoted.

- Walk-forward out of sample: the last `oos_fraction` of the bars is cut off before the study
  starts (the search never sees it); the chosen set then trades on through it, scored in
  consecutive folds. Tests `oos_sharpe` (annualised, over every out-of-sample bar of the regime),
  `oos_folds` (the share of folds that made money) and `oos_trades` (enough round trips to judge).
- Deflated Sharpe ratio (Bailey & López de Prado, 2014): the probability that the best in-sample
  Sharpe is above the Sharpe the best of N skill-less trials would reach by luck, N being the
  trials the study actually ran, corrected for the returns' skew and fat tails.
- Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey,
  Borwein, López de Prado & Zhu, 2017): over every half/half split of S time blocks, how often
  the trial best on one half ranks in the bottom half on the other.
Thresholds and why: docs/optimization.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


@dataclass(frozen=True)
class GateThresholds:
    min_dsr: float = 0.95
    max_pbo: float = 0.5
    min_oos_sharpe: float = 0.5
    min_oos_fold_share: float = 0.5  # share of folds with a positive return
    min_oos_trades: int = 5


@dataclass(frozen=True)
class GateTest:
    test: str
    value: float
    threshold: float
    passed: bool
    op: str  # how value must compare with threshold: ">=" or "<="

    def failure(self) -> str:
        wrong = "<" if self.op == ">=" else ">"
        value, threshold = _fmt(self.value), _fmt(self.threshold)
        if value == threshold:  # 0.9497 would read "0.95 < 0.95": show the digits that differ
            value = f"{self.value:.6g}"
        return f"{self.test}: {value} {wrong} {threshold}"

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "value": self.value, "threshold": self.threshold, "passed": self.passed}


def _fmt(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() and abs(x) < 1e6 else f"{x:.3g}" if abs(x) < 0.01 else f"{x:.2f}"


@dataclass(frozen=True)
class GateVerdict:
    tests: list[GateTest] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.tests) and all(t.passed for t in self.tests)

    @property
    def failed_tests(self) -> list[str]:
        """One string per failed test, starting with its name and saying by how much."""
        return [t.failure() for t in self.tests if not t.passed]

    def value(self, test: str) -> float | None:
        return next((t.value for t in self.tests if t.test == test), None)


def check(test: str, value: float, threshold: float, op: str = ">=") -> GateTest:
    ok = value >= threshold if op == ">=" else value <= threshold
    return GateTest(test, float(value), float(threshold), bool(ok and math.isfinite(value)), op)


# --- deflated Sharpe ratio --------------------------------------------------------------------
def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR0: the expected maximum Sharpe of `n_trials` skill-less trials whose Sharpe ratios vary
    with `var_sharpe` (same units as the Sharpe ratios)."""
    if n_trials <= 1 or var_sharpe <= 0:
        return 0.0
    return math.sqrt(var_sharpe) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                                    + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


def null_sharpe_variance(n_obs: int) -> float:
    """Variance of the Sharpe estimate of a skill-less strategy over `n_obs` returns (≈ 1/(T−1)):
    the spread the best of N lucky trials is drawn from. The study's own cross-trial variance would
    count a structured space's real differences (a phase that catches a move, one that does not)
    as luck and deflate a real edge to nothing."""
    return 1.0 / (n_obs - 1) if n_obs > 1 else 0.0


def deflated_sharpe_ratio(sharpe: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
                          var_sharpe: float) -> float:
    """DSR = Φ((SR − SR0)·√(T−1) / √(1 − γ3·SR + (γ4−1)/4·SR²)), SR per observation (not
    annualised), γ4 the plain (not excess) kurtosis."""
    if n_obs < 2:
        return 0.0
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if denom <= 0:
        return 0.0
    return _N.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def moments(r: np.ndarray) -> tuple[float, float, float]:
    """(per-observation Sharpe, skewness, plain kurtosis) of returns; zeros when flat."""
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return 0.0, 0.0, 3.0
    mu, sd = float(r.mean()), float(r.std())
    if sd <= 1e-15:
        return 0.0, 0.0, 3.0
    z = (r - mu) / sd
    return mu / float(r.std(ddof=1)), float(np.mean(z ** 3)), float(np.mean(z ** 4))


# --- probability of backtest overfitting (CSCV) -----------------------------------------------
def block_stats(r: np.ndarray, n_blocks: int) -> np.ndarray:
    """Per block of consecutive returns: [sum, sum of squares, count] (shape n_blocks × 3), what
    CSCV needs of one trial (a study keeps this, not every bar's return)."""
    r = np.asarray(r, dtype=np.float64)
    parts = np.array_split(r, n_blocks)
    return np.array([[p.sum(), (p * p).sum(), p.size] for p in parts], dtype=np.float64)


def pbo_cscv(stats: np.ndarray) -> tuple[float, np.ndarray]:
    """PBO and the logits λ of each split, from `stats` (trials × blocks × 3 as `block_stats`).
    Performance is the Sharpe ratio; the rank of the in-sample best is taken out of sample,
    ω = rank / (N + 1), λ = ln(ω / (1 − ω)); PBO = the share of splits with λ ≤ 0."""
    stats = np.asarray(stats, dtype=np.float64)
    n_trials, n_blocks = stats.shape[0], stats.shape[1]
    if n_trials < 2 or n_blocks < 2 or n_blocks % 2:
        return float("nan"), np.empty(0)
    combos = np.array(list(combinations(range(n_blocks), n_blocks // 2)))
    sel = np.zeros((len(combos), n_blocks))
    sel[np.arange(len(combos))[:, None], combos] = 1.0
    # a split and its mirror are both in the list (the symmetric part of CSCV)
    logits = np.empty(len(combos))

    def sharpe(mask: np.ndarray) -> np.ndarray:  # (splits × trials)
        s1 = mask @ stats[:, :, 0].T
        s2 = mask @ stats[:, :, 1].T
        n = mask @ stats[:, :, 2].T
        mean = np.divide(s1, n, out=np.zeros_like(s1), where=n > 0)
        var = np.divide(s2, n, out=np.zeros_like(s2), where=n > 0) - mean * mean
        sd = np.sqrt(np.maximum(var, 0.0))
        return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 1e-15)

    is_sr, oos_sr = sharpe(sel), sharpe(1.0 - sel)
    best = np.argmax(is_sr, axis=1)
    best_oos = oos_sr[np.arange(len(combos)), best]
    # rank 1 = worst … N = best; ties share the average rank
    below = (oos_sr < best_oos[:, None]).sum(axis=1)
    ties = (oos_sr == best_oos[:, None]).sum(axis=1)
    rank = below + (ties + 1) / 2.0
    omega = rank / (n_trials + 1)
    logits[:] = np.log(omega / (1.0 - omega))
    return float(np.mean(logits <= 0)), logits
