"""The compiled TPE numerics (`optimize.tpe_numerics`) give Optuna's own numbers bit for bit, and a
seeded study samples the same parameters with them as without (the oracle: Optuna's code)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.samplers._tpe import _truncnorm

from nettrace_dagster.optimize import tpe_numerics as T


def _points() -> np.ndarray:
    """Every branch of `_log_ndtr_single` and its edges: the erfc/erf switches at ±1, the
    a > 6 and a ≤ −20 cuts, the asymptotic series far out, and the non-finite values."""
    rng = np.random.default_rng(0)
    edges = np.array([-20.0, -19.999999, -20.000001, 6.0, 6.000001, 5.999999, -1.0, 1.0, 0.0, -0.0,
                      np.nextafter(-20.0, 0.0), np.nextafter(-20.0, -np.inf), np.nextafter(6.0, np.inf),
                      -1e10, -1e154, 1e300, np.inf, -np.inf, np.nan])
    return np.concatenate([edges, rng.normal(0.0, 3.0, 100_000), rng.uniform(-40.0, 10.0, 100_000),
                           -np.exp(rng.uniform(3.0, 30.0, 20_000)), rng.uniform(-1.5, 1.5, 20_000)])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # Optuna's own, at NaN
def test_log_ndtr_equals_optunas_bit_for_bit() -> None:
    a = _points()
    ref = T._ORIGINAL(a)
    fast = T.log_ndtr(a)
    assert fast.dtype == ref.dtype and fast.shape == ref.shape
    assert np.array_equal(fast.view(np.int64)[~np.isnan(ref)], ref.view(np.int64)[~np.isnan(ref)])
    assert np.array_equal(np.isnan(fast), np.isnan(ref))
    assert (a <= -20).sum() > 10_000  # the asymptotic branch was exercised, not just the erf ones
    grid = a[:2_000].reshape(40, 50)  # other shapes keep their shape
    assert np.array_equal(T.log_ndtr(grid), T._ORIGINAL(grid), equal_nan=True)
    assert T.log_ndtr(np.empty((0, 3))).shape == (0, 3)


def test_log_ndtr_raises_where_optunas_does() -> None:
    with pytest.raises(OverflowError):  # CPython's -1e200**2 overflows; numba's would be inf
        T._ORIGINAL(np.array([-1e200]))
    with pytest.raises(OverflowError):
        T.log_ndtr(np.array([0.5, -1e200]))


@pytest.mark.parametrize("n", [0, 1, 7, 1_999, 2_000, 5_000])
def test_erf_equals_optunas_bit_for_bit(n: int) -> None:
    x = np.random.default_rng(n).normal(0.0, 2.0, size=n)
    if n:
        x[0] = np.nan
    assert np.array_equal(T.erf(x), T._ORIGINAL_ERF(x), equal_nan=True)
    square = x[: (n // 2) * 2].reshape(-1, 2) if n else x.reshape(0, 2)
    assert np.array_equal(T.erf(square), T._ORIGINAL_ERF(square), equal_nan=True)


def _study_params(compiled: bool) -> list[dict[str, float]]:
    def objective(trial: optuna.Trial) -> float:
        xs = [trial.suggest_float(f"x{i}", -3.0, 3.0) for i in range(6)]
        ks = [trial.suggest_int(f"k{i}", 2, 400) for i in range(4)]
        trial.set_constraint("c", xs[0] - 2.0)
        return -sum((x - 1.0) ** 2 for x in xs) - sum(abs(k - 50) for k in ks) / 100.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, multivariate=True)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    if compiled:
        with T.compiled_truncnorm() as on:
            assert on
            assert _truncnorm._log_ndtr is T.log_ndtr and _truncnorm.erf is T.erf
            study.optimize(objective, n_trials=40)
        assert _truncnorm._log_ndtr is T._ORIGINAL and _truncnorm.erf is T._ORIGINAL_ERF  # restored
    else:
        study.optimize(objective, n_trials=40)
    return [t.params for t in study.trials]


def test_a_seeded_study_samples_the_same_parameters() -> None:
    assert _study_params(compiled=True) == _study_params(compiled=False)


def test_another_optuna_version_keeps_optunas_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optuna, "__version__", "99.0.0")
    with T.compiled_truncnorm() as on:
        assert not on and _truncnorm._log_ndtr is T._ORIGINAL


def test_nested_uses_restore_only_when_the_last_leaves() -> None:
    with T.compiled_truncnorm():
        with T.compiled_truncnorm():
            pass
        assert _truncnorm._log_ndtr is T.log_ndtr
    assert _truncnorm._log_ndtr is T._ORIGINAL
