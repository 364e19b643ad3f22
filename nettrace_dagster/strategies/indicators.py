"""Indicators strategies build on: NaN during warm-up, float64 in and out, compiled once."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _sma(x: np.ndarray, window: int) -> np.ndarray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    total = 0.0
    for i in range(n):
        total += x[i]
        if i >= window:
            total -= x[i - window]
        if i >= window - 1:
            out[i] = total / window
    return out


@nb.njit(cache=True, nogil=True)
def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    for i in range(window - 1, n):
        mean = 0.0
        for j in range(i - window + 1, i + 1):
            mean += x[j]
        mean /= window
        var = 0.0
        for j in range(i - window + 1, i + 1):
            d = x[j] - mean
            var += d * d
        out[i] = np.sqrt(var / window)
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
    return _sma(np.ascontiguousarray(x, dtype=np.float64), _check_window(window))


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation over `window` bars (two-pass, numerically stable)."""
    return _rolling_std(np.ascontiguousarray(x, dtype=np.float64), _check_window(window))


def rsi(x: np.ndarray, window: int = 14) -> np.ndarray:
    """Wilder's relative strength index in [0, 100]."""
    return _rsi(np.ascontiguousarray(x, dtype=np.float64), _check_window(window))


def roc(x: np.ndarray, window: int) -> np.ndarray:
    """Rate of change: x[i] / x[i - window] - 1."""
    window = _check_window(window)
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > window:
        out[window:] = x[window:] / x[:-window] - 1.0
    return out
