"""The optimizer's compiled paths agree with the plain ones they replace, on random inputs:
bit for bit (an entry gate compares these numbers with thresholds, so "close" is not enough)."""

from __future__ import annotations

import numpy as np
import pytest

from nettrace_dagster.strategies import evidence as E
from nettrace_dagster.strategies import indicators as I


@pytest.mark.parametrize("seed", range(3))
def test_rolling_std_four_at_a_time_equals_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=5_003)) + 1_000.0
    for window in (1, 2, 3, 4, 5, 7, 20, 63, 200):
        fast, ref = I._rolling_std(x, window), I._rolling_std_one(x, window)
        assert np.isfinite(fast[window - 1:]).all()
        assert np.array_equal(fast, ref, equal_nan=True), window
    for n in range(9):  # series shorter than, equal to, and just past the window and the step of 4
        for window in range(1, 6):
            assert np.array_equal(I._rolling_std(x[:n], window), I._rolling_std_one(x[:n], window), equal_nan=True)


def test_strength_compiled_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(0.5, 1.0, size=10_000)
    s[rng.random(s.size) < 0.05] = np.nan
    s[rng.random(s.size) < 0.02] = np.inf
    s[rng.random(s.size) < 0.02] = -np.inf
    agrees = rng.random(s.size) < 0.6
    fast, ref = E._strength_nb(agrees, s), E._strength_py(agrees, s)
    assert ((fast > 0) & (fast < 1)).any() and (fast == 1).any()
    assert np.array_equal(fast, ref)


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_combine_compiled_equals_confidence_and_count(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 20_000
    fams = {name: E._family(rng.random(n) < 0.5, rng.random(n) * 1.2 - 0.1) for name in E.FAMILIES[:k]}
    ev = E.Evidence(fams, n)
    confidence, count = E.combine(ev)
    assert count.max() == k and (confidence > (0.7 if k >= 2 else 0.5)).any()
    assert np.array_equal(confidence, ev.confidence())
    assert np.array_equal(count, ev.count())


def test_memo_returns_the_same_arrays_read_only_and_stays_bounded() -> None:
    x = np.cumsum(np.random.default_rng(2).normal(size=1_000)) + 100.0
    outside = I.sma(x, 5)
    assert outside.flags.writeable  # no memo outside `memoized()`
    with I.memoized(max_bytes=3 * x.nbytes) as memo:
        a = I.sma(x, 5)
        assert I.sma(x, 5) is a and not a.flags.writeable
        assert np.array_equal(a, outside, equal_nan=True)
        assert I.sma(x.copy(), 5) is not a  # another buffer is another input
        for w in range(6, 12):
            I.rolling_std(x, w)
        assert memo._bytes <= 3 * x.nbytes
        assert I.sma(x, 5) is not a  # evicted (oldest first), recomputed equal
        assert np.array_equal(I.sma(x, 5), outside, equal_nan=True)
    assert I.sma(x, 5).flags.writeable


def test_confirm_memoized_equals_plain() -> None:
    from nettrace_dagster.backtest.synthetic import synthetic_candles

    candles = synthetic_candles(3_000, seed=5)
    configs = [E.EvidenceConfig(), E.EvidenceConfig(trend_window=37, volume_window=9),
               E.EvidenceConfig(regime_accepts=("BULL", "SIDEWAYS"))]
    plain = [E.gather(candles, c, [f for f in E.FAMILIES if f != E.MOMENTUM]) for c in configs]
    with I.memoized():
        for _ in range(2):
            for config, ev in zip(configs, plain, strict=True):
                confidence, count = E.confirm(candles, E.MOMENTUM, config)
                assert (count >= 2).any()
                assert np.array_equal(confidence, ev.confidence()) and np.array_equal(count, ev.count())
