"""Optuna's TPE with its normal-CDF numerics compiled: the same numbers, bit for bit, faster.

TPE's truncated normals (`optuna.samplers._tpe._truncnorm`) take the log of the standard normal
CDF element by element in Python (`np.frompyfunc` over `_log_ndtr_single`): with 22 dimensions,
~200 kernels and 24 candidates that is ~1.5 million Python calls in a 200-trial study, more than
half of the sampler's time; `erf` of fewer than 2,000 values is a Python list of `math.erf`.
`log_ndtr` and `erf` here are the same functions compiled: the same branches, the same constants,
and `math.erf`, `math.erfc`, `math.log` and `math.pow`, which numba takes from the C library
exactly as CPython does (numpy's own `log` may differ by an ulp: not used). NaN, ±inf and
overflowing squares are left to Optuna's own code (CPython raises OverflowError there).
`tests/test_tpe_numerics.py` checks both bit for bit against Optuna's on ~240,000 points and
that a seeded study samples the same parameters with and without them.

`compiled_truncnorm()` swaps them in for the duration of a study (Optuna's module looks both up
by name at each call), only for the Optuna version they were checked against: under any other,
Optuna's own stay.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numba as nb
import numpy as np
import optuna
from optuna.samplers._tpe import _truncnorm

CHECKED_OPTUNA = ("5.0.0",)  # versions whose `_log_ndtr_single` this reproduces

_SQRT2 = 2**0.5  # Optuna's `a / 2**0.5` and `±1 / 2**0.5`, the same doubles
_HALF_SQRT2 = 1 / 2**0.5
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_EPSILON = sys.float_info.epsilon


@nb.njit(cache=True, nogil=True)
def _ndtr_one(a: float) -> float:
    """Optuna's `_ndtr_single`."""
    x = a / _SQRT2
    if x < -_HALF_SQRT2:
        return 0.5 * math.erfc(-x)
    if x < _HALF_SQRT2:
        return 0.5 + 0.5 * math.erf(x)
    return 1.0 - 0.5 * math.erfc(x)


@nb.njit(cache=True, nogil=True)
def _log_ndtr_tail(a: float, a2: float) -> float:
    """Optuna's asymptotic series for a ≤ −20, operation for operation (`a2` is its `a**2`)."""
    log_lhs = -0.5 * a2 - math.log(-a) - _HALF_LOG_2PI
    last_total = 0.0
    right_hand_side = 1.0
    numerator = 1.0
    denom_factor = 1.0
    denom_cons = 1 / a2
    sign = 1.0
    i = 0
    while abs(last_total - right_hand_side) > _EPSILON:
        i += 1
        last_total = right_hand_side
        sign = -sign
        denom_factor *= denom_cons
        numerator *= 2 * i - 1
        right_hand_side += sign * numerator * denom_factor
    return log_lhs + math.log(right_hand_side)


@nb.njit(cache=True, nogil=True)
def _log_ndtr_nb(a: np.ndarray, out: np.ndarray, two: float) -> np.ndarray:
    """Optuna's `_log_ndtr_single` at each finite element of `a` (flat) into `out`; the indices
    of the others (NaN, ±inf, and those whose square overflows, where CPython raises), which the
    caller leaves to Optuna's own function. `a**2` in CPython is the C library's `pow(a, 2.0)`,
    which is not always `a * a` (1 in ~1,000 differs by an ulp): `two` comes in at run time so
    that LLVM cannot fold the `pow` into a multiplication."""
    rest = np.empty(a.shape[0], dtype=np.int64)
    k = 0
    for i in range(a.shape[0]):
        v = a[i]
        if not np.isfinite(v):
            rest[k] = i
            k += 1
        elif v > 6:
            out[i] = -_ndtr_one(-v)
        elif v > -20:
            out[i] = math.log(_ndtr_one(v))
        else:
            a2 = math.pow(v, two)
            if np.isfinite(a2):
                out[i] = _log_ndtr_tail(v, a2)
            else:
                rest[k] = i
                k += 1
    return rest[:k]


_ORIGINAL: Callable[[np.ndarray], np.ndarray] = _truncnorm._log_ndtr
_ORIGINAL_SINGLE: Callable[[float], float] = _truncnorm._log_ndtr_single


def log_ndtr(a: np.ndarray) -> np.ndarray:
    """Drop-in for `_truncnorm._log_ndtr` (float64 array of `a`'s shape)."""
    arr = np.asarray(a, dtype=np.float64)
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in _log_ndtr_nb(flat, out, 2.0).tolist():
        out[i] = _ORIGINAL_SINGLE(float(flat[i]))
    return out.reshape(arr.shape)


@nb.njit(cache=True, nogil=True)
def _erf_nb(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = math.erf(x[i])
    return out


_ORIGINAL_ERF: Callable[[np.ndarray], np.ndarray] = _truncnorm.erf


def erf(x: np.ndarray) -> np.ndarray:
    """Drop-in for Optuna's `_erf.erf`: below 2,000 elements it is `math.erf` element by element
    in Python (compiled here, the same C function); above, its own numpy polynomials (kept)."""
    if x.size >= 2000:
        return _ORIGINAL_ERF(x)
    return _erf_nb(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).reshape(x.shape)


_lock = threading.Lock()
_users = 0


@contextmanager
def compiled_truncnorm() -> Iterator[bool]:
    """Inside: Optuna's TPE uses `log_ndtr` (yields whether it does). Nested and concurrent
    studies share it; the last one out restores Optuna's function."""
    global _users
    if (optuna.__version__ not in CHECKED_OPTUNA or _truncnorm._log_ndtr not in (_ORIGINAL, log_ndtr)
            or _truncnorm.erf not in (_ORIGINAL_ERF, erf)):
        yield False
        return
    with _lock:
        _users += 1
        _truncnorm._log_ndtr, _truncnorm.erf = log_ndtr, erf
    try:
        yield True
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _truncnorm._log_ndtr, _truncnorm.erf = _ORIGINAL, _ORIGINAL_ERF
