"""The optimizer's compiled paths agree with the plain ones they replace, on random inputs:
bit for bit (an entry gate compares these numbers with thresholds, so "close" is not enough)."""

from __future__ import annotations

import numpy as np
import pytest

from nettrace_dagster.strategies import evidence as E
from nettrace_dagster.strategies import indicators as I


@pytest.mark.parametrize("seed", range(3))
def test_rolling_std_in_blocks_equals_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=5_003)) + 1_000.0
    for window in (1, 2, 3, 4, 5, 7, 20, 63, 200, 257, 600):
        fast, ref = I._rolling_std(x, window), I._rolling_std_one(x, window)
        assert np.isfinite(fast[window - 1:]).all()
        assert np.array_equal(fast, ref, equal_nan=True), window
    assert np.array_equal(I._rolling_std(x, 5_003), I._rolling_std_one(x, 5_003), equal_nan=True)
    for n in range(9):  # series shorter than, equal to, and just past the window
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
def test_combine_compiled_equals_confidence_and_count(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(k)
    n = 20_000
    fams = {name: E._family(rng.random(n) < 0.5, rng.random(n) * 1.2 - 0.1) for name in E.FAMILIES[:k]}
    ev = E.Evidence(fams, n)
    confidence, count = E.combine(ev)
    assert count.max() == k and (confidence > (0.7 if k >= 2 else 0.5)).any()
    assert np.array_equal(confidence, ev.confidence())
    assert np.array_equal(count, ev.count())
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(I, "SPLIT_MIN_WORK", 0)
    with ThreadPoolExecutor(max_workers=2) as pool, I.helped_by(pool):  # in bar ranges on a pool
        confidence, count = E.combine(ev)
    assert np.array_equal(confidence, ev.confidence()) and np.array_equal(count, ev.count())


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
        assert memo._bytes <= 3 * x.nbytes and len(memo._items) == 3  # six more results, room for three
        assert np.array_equal(I.sma(x, 5), outside, equal_nan=True)  # kept or recomputed: the same
        assert np.array_equal(I.rolling_std(x, 6), I._rolling_std_one(x, 6), equal_nan=True)
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


@pytest.mark.parametrize("seed", range(4))
def test_returns_metrics_compiled_equals_numpy(seed: int) -> None:
    from nettrace_dagster.optimize.portfolio import returns_metrics, returns_metrics_py

    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 0.01, size=50_000) + (seed - 2) * 1e-4
    r[rng.random(r.size) < 0.3] = 0.0
    cases = [r, r[:1], r[:2], -np.abs(r[:100]), np.abs(r[:100]), np.array([0.1, np.nan, -0.2]),
             np.array([np.inf, -0.5]), np.array([-1.0, 0.5]), np.array([-2.0, 0.5, -0.1])]
    for case in cases:
        with np.errstate(all="ignore"):
            fast, ref = returns_metrics(case, 525_600.0), returns_metrics_py(case, 525_600.0)
        assert fast == ref or np.array_equal(np.array(fast), np.array(ref), equal_nan=True), (case[:5], fast, ref)
    assert returns_metrics(r, 525_600.0)[2] > 0.1


@pytest.mark.parametrize("seed", range(3))
def test_portfolio_steps_compiled_equal_numpy(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.optimize import portfolio as P

    rng = np.random.default_rng(seed)
    n, cash = 5_000, 100.0
    slots = []
    for _ in range(3):  # non-overlapping trades per slot, multipliers 1 or 2 (clones), some slots empty
        bounds = np.sort(rng.choice(n, size=2 * int(rng.integers(0, 40)), replace=False))
        entry, exit_ = bounds[0::2].astype(np.int64), bounds[1::2].astype(np.int64)
        mult = rng.choice([1.0, 2.0], size=entry.size)
        curve = cash + np.cumsum(rng.normal(0.0, 0.3, size=n))
        slots.append((curve, entry, exit_, mult))
    slots = [s for s in slots if s[1].size] or [slots[0]]
    ref_equity, ref_r = P._steps_py(slots, cash)
    step = np.empty(n)
    for i, (curve, entry, exit_, mult) in enumerate(slots):
        P._add_weighted_steps(curve, cash, entry, exit_, mult, step, i == 0)
    equity, r = P._equity_returns(step, cash)
    assert (r != 0).any()
    assert np.array_equal(equity, ref_equity) and np.array_equal(r, ref_r)
    # in bar ranges (cut inside trades, at entries and just past exits), by hand and on a pool
    cuts = sorted({0, n, *rng.integers(1, n, size=6).tolist(), *(int(e) for c in slots for e in c[1][:2]),
                   *(int(x) + 1 for c in slots for x in c[2][:2])})
    ranged = np.empty(n)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        for i, (curve, entry, exit_, mult) in enumerate(slots):
            P._add_weighted_steps(curve, cash, entry, exit_, mult, ranged, i == 0, lo, hi)
    assert np.array_equal(ranged, step)
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(I, "SPLIT_MIN_WORK", 0)
    with ThreadPoolExecutor(max_workers=2) as pool, I.helped_by(pool):
        assert np.array_equal(P._weighted_steps(slots, cash), step)
    # equity at or below zero: returns after it are 0, as numpy's `where=prev > 0`
    equity, r = P._equity_returns(np.array([-60.0, -50.0, 5.0, 1.0]), cash)
    assert np.array_equal(r, np.divide(equity, np.r_[cash, equity[:-1]], out=np.ones(4),
                                       where=np.r_[cash, equity[:-1]] > 0) - 1.0)


def test_memo_serves_only_the_platforms_own_computations() -> None:
    """A strategy file can import `indicators`; what it plants must not reach other strategies."""
    x = np.arange(1.0, 101.0)
    with I.memoized() as memo:
        planted = I.remember("sma", (x,), (5,), lambda: np.zeros(100))  # this file is not trusted
        assert not planted.any() and memo.misses == 0
        assert np.array_equal(I.sma(x, 5)[4:], np.arange(3.0, 99.0))
        assert memo.misses == 1 and I.sma(x, 5) is I.sma(x, 5)


@pytest.mark.parametrize("window", [1, 2, 9, 10, 37, 400])
def test_trend_and_volume_families_compiled_equal_numpy(window: int) -> None:
    rng = np.random.default_rng(window)
    n = 6_000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, size=n)))
    close[rng.random(n) < 0.01] = 0.0 if window > 1 else close[0]  # zero closes: log(0), 0/0
    volume = rng.lognormal(0.0, 1.0, size=n)
    volume[rng.random(n) < 0.02] = 0.0
    sigma = E.realised_volatility(np.abs(close) + 1.0, 20)
    sigma[rng.random(n) < 0.01] = 0.0  # a dead market: strength ±inf
    with np.errstate(all="ignore"):
        pairs = [(E.trend_family(close, window, sigma), E.trend_family_py(close, window, sigma)),
                 (E.volume_family(volume, window), E.volume_family_py(volume, window))]
    for fast, ref in pairs:
        assert fast.agrees.any() and ((fast.strength > 0) & (fast.strength < 1)).any()
        assert np.array_equal(fast.agrees, ref.agrees)
        assert np.array_equal(fast.strength, ref.strength)


def test_sma_equals_a_plain_running_sum() -> None:
    x = np.cumsum(np.random.default_rng(6).normal(size=400)) + 50.0
    for window in (1, 2, 7, 399, 400, 401):
        ref, total = np.full(x.size, np.nan), 0.0
        for i in range(x.size):
            total += x[i]
            if i >= window:
                total -= x[i - window]
            if i >= window - 1:
                ref[i] = total / window
        assert np.array_equal(I.sma(x, window), ref, equal_nan=True)


@pytest.mark.parametrize("window", [1, 2, 20, 199])
def test_zscore_compiled_equals_numpy(window: int) -> None:
    from nettrace_dagster.strategies import builtin as B

    rng = np.random.default_rng(window)
    close = 100.0 + np.cumsum(rng.normal(size=4_000))
    close[1_000:1_000 + window + 5] = 100.0  # a flat stretch (exact sums): std 0, z 0
    close[3_000] = np.nan  # NaN poisons the running mean from here on
    z, ref = B.zscore(close, window), B.zscore_py(close, window)
    assert (z == 0).any() and np.isfinite(z).any() and np.isnan(z[-1])
    assert np.array_equal(z, ref, equal_nan=True)


def test_rolling_std_split_over_helpers_equals_one_at_a_time() -> None:
    """Split across a pool (idle or busy) or not, the same bits; the caller never waits on work
    no worker has started (a pool whose only worker is blocked still finishes)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    x = np.cumsum(np.random.default_rng(9).normal(size=50_001)) + 1_000.0
    ref = I._rolling_std_one(x, 97)
    with ThreadPoolExecutor(max_workers=2) as pool, I.helped_by(pool):
        assert np.array_equal(I._rolling_std(x, 97), ref, equal_nan=True)
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        blocked = pool.submit(release.wait)
        with I.helped_by(pool):
            assert np.array_equal(I._rolling_std(x, 97), ref, equal_nan=True)  # all taken back
        release.set()
        blocked.result()
    ranges: list[tuple[int, int]] = []
    with ThreadPoolExecutor(max_workers=2) as pool, I.helped_by(pool):
        I.split_range(lambda lo, hi: ranges.append((lo, hi)), 10, work=I.SPLIT_MIN_WORK)
    assert sorted(ranges) == [(0, 1), (1, 2), (2, 3), (3, 5), (5, 6), (6, 7), (7, 8), (8, 10)]  # each index once


@pytest.mark.parametrize("level", [0.0, 0.3, -1.0, float("nan"), np.float32(0.25), 1])
def test_crossings_of_a_level_compiled_equal_numpy(level: float) -> None:
    from nettrace_dagster.strategies.base import crossed_above, crossed_below

    a = np.round(np.random.default_rng(4).normal(size=5_000), 1)  # many bars exactly at the level
    a[:30] = np.nan
    a[2_000:2_010] = np.nan
    ref_level = np.full(a.size, level, dtype=np.float64)  # an array level takes the numpy form
    up, down = crossed_above(a, level), crossed_below(a, level)
    assert np.array_equal(up, crossed_above(a, ref_level)) and np.array_equal(down, crossed_below(a, ref_level))
    assert up.any() == (level == level) and up.dtype == np.bool_
    assert not crossed_above(a[:1], level).any() and crossed_below(a[:0], level).shape == (0,)
