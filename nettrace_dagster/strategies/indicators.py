"""Indicators strategies build on: NaN during warm-up, float64 in and out, compiled once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any, TypeVar

import numba as nb
import numpy as np

T = TypeVar("T")
U = TypeVar("U")


@nb.njit(cache=True, nogil=True)
def _sma(x: np.ndarray, window: int) -> np.ndarray:
    n = x.shape[0]
    out = np.empty(n)  # every element written once below (NaN in the warm-up)
    total = 0.0
    for i in range(n):
        total += x[i]
        if i >= window:
            total -= x[i - window]
        out[i] = total / window if i >= window - 1 else np.nan
    return out


STD_BLOCK = 256  # outputs computed together: their running sums stay in L1


@nb.njit(cache=True, nogil=True, boundscheck=False)
def _rolling_std_into(x: np.ndarray, window: int, out: np.ndarray, lo: int, hi: int) -> None:
    """out[lo:hi] (lo ≥ window − 1) of the rolling std: each output depends on nothing but its
    own window, so ranges can be computed apart (and on different threads) with the same bits."""
    m = np.empty(STD_BLOCK)
    v = np.empty(STD_BLOCK)
    i = lo
    # a block of outputs at a time, the window offset j outermost: the inner loop over the block
    # is independent per output, so it vectorizes, while each output still sums its own window in
    # the same order as one at a time (bit-identical to `_rolling_std_one`)
    while i < hi:
        cnt = min(STD_BLOCK, hi - i)
        b = i - window + 1
        m[:cnt] = 0.0
        for j in range(window):
            xs = x[b + j:b + j + cnt]
            for k in range(cnt):
                m[k] += xs[k]
        for k in range(cnt):
            m[k] /= window
            v[k] = 0.0
        for j in range(window):
            xs = x[b + j:b + j + cnt]
            for k in range(cnt):
                d = xs[k] - m[k]
                v[k] += d * d
        for k in range(cnt):
            out[i + k] = np.sqrt(v[k] / window)
        i += cnt


def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """The rolling std (NaN in the warm-up), its output range shared with idle helper threads
    inside `helped_by` (`split_range`)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    first = window - 1
    if n > first:
        split_range(lambda lo, hi: _rolling_std_into(x, window, out, first + lo, first + hi), n - first,
                    work=(n - first) * window)
    return out


@nb.njit(cache=True, nogil=True, inline="always")
def _std_at(x: np.ndarray, i: int, window: int) -> float:
    mean = 0.0
    for j in range(i - window + 1, i + 1):
        mean += x[j]
    mean /= window
    var = 0.0
    for j in range(i - window + 1, i + 1):
        d = x[j] - mean
        var += d * d
    return np.sqrt(var / window)


@nb.njit(cache=True, nogil=True)
def _rolling_std_one(x: np.ndarray, window: int) -> np.ndarray:
    """The reference: one output at a time (tests check `_rolling_std` against it)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for i in range(window - 1, n):
        out[i] = _std_at(x, i, window)
    return out


@nb.njit(cache=True, nogil=True)
def _rsi(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n <= window:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, window + 1):
        d = x[i] - x[i - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= window
    loss /= window
    for i in range(window, n):
        if i > window:
            d = x[i] - x[i - 1]
            g = d if d > 0 else 0.0
            lo = -d if d < 0 else 0.0
            gain = (gain * (window - 1) + g) / window
            loss = (loss * (window - 1) + lo) / window
        if loss == 0.0:
            out[i] = 100.0 if gain > 0 else 50.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@nb.njit(cache=True, nogil=True)
def _cross(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = a.shape[0]
    up = np.zeros(n, dtype=np.bool_)
    down = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        x, y, px, py = a[i], b[i], a[i - 1], b[i - 1]
        up[i] = x > y and px <= py
        down[i] = x < y and px >= py
    return up, down


@nb.njit(cache=True, nogil=True, error_model="numpy")
def zscore_from(close: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(close − mean) / std per bar, 0 where std is not > 0, NaN where mean is NaN: the z-score of
    `builtin.zscore` in one pass (`builtin.zscore_py` is its numpy reference)."""
    z = np.empty(close.shape[0])
    for i in range(close.shape[0]):
        if np.isnan(mean[i]):
            z[i] = np.nan
        elif std[i] > 0:
            z[i] = (close[i] - mean[i]) / std[i]
        else:
            z[i] = 0.0
    return z


class Memo:
    """Results of pure functions of arrays, by (what, the input arrays' buffers, parameters):
    an optimizer asks for the same window of the same series again and again (an integer
    parameter has a few hundred values; evidence families ignore most of a strategy's
    parameters). Inputs are held, so their buffers cannot be reused by other data while cached;
    results are read-only, so no caller can corrupt the next one's. Only active inside
    `memoized()`: the caller promises the inputs' contents do not change meanwhile (a study's
    candles).

    Bounded by bytes. What goes when full is what costs least to recompute per byte and was
    used least recently (GreedyDual-Size: a result's credit is the inflation floor at its last
    use + its compute seconds per byte; the lowest credit goes and raises the floor to its
    own): a rolling std over 200 bars outlives a 3-bar moving average of the same size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # key -> [inputs held, value, bytes, seconds per byte, credit]
        self._items: dict[tuple, list[Any]] = {}
        self._bytes = 0
        self._floor = 0.0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def _key(what: str, arrays: tuple[np.ndarray, ...], params: tuple) -> tuple:
        return (what, params) + tuple((a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
                                      for a in arrays)

    def _get(self, what: str, arrays: tuple[np.ndarray, ...], params: tuple, compute: Callable[[], T]) -> T:
        key = self._key(what, arrays, params)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                found[4] = self._floor + found[3]
                self.hits += 1
                return found[1]  # type: ignore[no-any-return]
            self.misses += 1
        started = time.perf_counter()
        value = compute()
        seconds = time.perf_counter() - started
        parts = value if isinstance(value, tuple) else (value,)
        size = 0
        for part in parts:
            if isinstance(part, np.ndarray):
                part.flags.writeable = False
                size += part.nbytes
        with self._lock:
            if size <= self.max_bytes and key not in self._items:
                while self._items and self._bytes + size > self.max_bytes:
                    victim = min(self._items, key=lambda k: self._items[k][4])
                    gone = self._items.pop(victim)
                    self._floor = gone[4]
                    self._bytes -= gone[2]
                per_byte = seconds / max(size, 1)
                self._items[key] = [arrays, value, size, per_byte, self._floor + per_byte]
                self._bytes += size
        return value


_MEMO: list[Memo] = []


@contextmanager
def memoized(max_bytes: int = 512 * 2**20, memo: Memo | None = None) -> Iterator[Memo]:
    """Memoize indicators and evidence families while inside, in `memo` (default a new one of
    `max_bytes`); nested without `memo`, the outer memo serves."""
    if _MEMO and memo is None:
        yield _MEMO[-1]
        return
    memo = memo or Memo(max_bytes)
    _MEMO.append(memo)
    try:
        yield memo
    finally:
        _MEMO.remove(memo)


_HELPERS: list[Executor] = []
SPLIT_PARTS = 8  # a pass in this many ranges: an idle worker can join one that is under way
SPLIT_MIN_WORK = 2_000_000  # below this many inner steps (~1 ms) a pass is not worth splitting


@contextmanager
def helped_by(pool: Executor) -> Iterator[None]:
    """Inside, long indicator passes (`split_range`) offer parts of their work to `pool`: the
    portfolio backtest's slots run on its workers, and one that finishes early helps the slot
    still running instead of idling. Process-wide, like `memoized`."""
    _HELPERS.append(pool)
    try:
        yield
    finally:
        _HELPERS.remove(pool)


def split_range(run: Callable[[int, int], None], n: int, work: int) -> None:
    """`run(lo, hi)` over [0, n) in consecutive ranges: the first here, the others offered to the
    helper pool; whatever no worker has started yet is taken back and run here, so the caller
    never waits on queued work (no deadlock, even from a worker of that pool). `run` must write
    each range's results independently of the others (the same bits however it is split)."""
    if not _HELPERS or work < SPLIT_MIN_WORK or n < SPLIT_PARTS:
        run(0, n)
        return
    pool = _HELPERS[-1]
    bounds = [n * k // SPLIT_PARTS for k in range(SPLIT_PARTS + 1)]
    offered = [(pool.submit(run, lo, hi), lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:], strict=True)]
    try:
        run(bounds[0], bounds[1])
        # take back from the end what no worker has started (workers take from the front), and
        # only then wait for the ranges workers are running: waiting for each range in turn
        # would leave the caller idle while a worker takes the next ones one by one
        started = []
        for future, lo, hi in reversed(offered):
            if future.cancel():
                run(lo, hi)
            else:
                started.append(future)
        for future in started:
            future.result()
    finally:  # on an error here, what no worker has started is not run at all
        for future, _, _ in offered:
            future.cancel()


def in_parallel(here: Callable[[], T], there: Callable[[], U]) -> tuple[T, U]:
    """(here(), there()): `there` offered to the helper pool while `here` runs, and taken back
    if no worker has started it (as `split_range`); in turn without a helper pool."""
    if not _HELPERS:
        return here(), there()
    future = _HELPERS[-1].submit(there)
    first = here()
    return first, (there() if future.cancel() else future.result())


# Only the platform's own computations are memoized: a strategy file may import this module, and
# a result it planted under another computation's key would be served to every other strategy.
# Its code lives in its own file, which it cannot forge (compile, CodeType and dunders are refused).
_DIR = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_TRUSTED = frozenset(f"{_DIR}/{name}.py" for name in ("indicators", "evidence", "builtin"))


def remember(what: str, arrays: tuple[np.ndarray, ...], params: tuple, compute: Callable[[], T]) -> T:
    """`compute()`, or its memoized result inside `memoized()` (for `compute` defined in this
    package's indicator, evidence and built-in strategy code; anything else is just computed)."""
    code = getattr(compute, "__code__", None)
    if not _MEMO or code is None or code.co_filename not in _TRUSTED:
        return compute()
    return _MEMO[-1]._get(what, arrays, params, compute)


def crosses(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a crossed above b, a crossed below b) in one pass; same rule as `crossed_above`/`below`."""
    return _cross(np.ascontiguousarray(a, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64))


def _check_window(window: int) -> int:
    window = int(window)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return window


def sma(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over `window` bars."""
    x, window = np.ascontiguousarray(x, dtype=np.float64), _check_window(window)
    return remember("sma", (x,), (window,), lambda: _sma(x, window))


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation over `window` bars (two-pass, numerically stable)."""
    x, window = np.ascontiguousarray(x, dtype=np.float64), _check_window(window)
    return remember("rolling_std", (x,), (window,), lambda: _rolling_std(x, window))


def rsi(x: np.ndarray, window: int = 14) -> np.ndarray:
    """Wilder's relative strength index in [0, 100]."""
    x, window = np.ascontiguousarray(x, dtype=np.float64), _check_window(window)
    return remember("rsi", (x,), (window,), lambda: _rsi(x, window))


def roc(x: np.ndarray, window: int) -> np.ndarray:
    """Rate of change: x[i] / x[i - window] - 1."""
    window = _check_window(window)
    x = np.asarray(x, dtype=np.float64)

    def compute() -> np.ndarray:
        out = np.full(x.shape[0], np.nan)
        if x.shape[0] > window:
            out[window:] = x[window:] / x[:-window] - 1.0
        return out

    return remember("roc", (x,), (window,), compute)
