"""The strategy protocol: candles + parameters in, per-bar signals out.

A strategy is a pure function of its inputs. It never places orders, reads or writes files, or
touches the network; the backtest engine and the trader decide what to do with its signals, and
both gate entries through the same Rule 2 check (`nettrace_dagster.rules.entry_gate_mask`).

Signal timing: every array has one element per candle. `entries[i]` / `exits[i]` are decided with
the information available at the *close* of bar i; the engine fills them at the open of bar i + 1.
`confidence[i]` (in [0, 1]) and `confirmations[i]` (count of agreeing conditions) describe the
entry signal at bar i; on bars without an entry they are 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import polars as pl


class Signals(NamedTuple):
    """Per-bar signals; every array has length n (the number of candles)."""

    entries: np.ndarray  # bool[n]
    exits: np.ndarray  # bool[n]
    confidence: np.ndarray  # float64[n], in [0, 1]
    confirmations: np.ndarray  # int64[n], >= 0

    @classmethod
    def empty(cls, n: int) -> Signals:
        return cls(np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_),
                   np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.int64))

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.entries.shape[0])

    def checked(self, n: int) -> Signals:
        """The same signals with canonical dtypes, or ValueError naming what is wrong."""
        arrays = {
            "entries": np.ascontiguousarray(self.entries, dtype=np.bool_),
            "exits": np.ascontiguousarray(self.exits, dtype=np.bool_),
            "confidence": np.ascontiguousarray(self.confidence, dtype=np.float64),
            "confirmations": np.ascontiguousarray(self.confirmations, dtype=np.int64),
        }
        for key, arr in arrays.items():
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(f"signals.{key} has shape {arr.shape}, expected ({n},)")
        conf = arrays["confidence"]
        if not np.all(np.isfinite(conf)) or conf.min(initial=0.0) < 0.0 or conf.max(initial=0.0) > 1.0:
            raise ValueError("signals.confidence must be finite and in [0, 1]")
        if arrays["confirmations"].min(initial=0) < 0:
            raise ValueError("signals.confirmations must be >= 0")
        return Signals(**arrays)


class Strategy(ABC):
    """Base class of every strategy (built-in, templated or generated).

    Subclasses set `name`, `default_params` (every parameter with its default), optionally
    `param_space` (name -> ("int"|"float", low, high) for optimizers), and implement `signals`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_params: ClassVar[dict[str, Any]] = {}
    param_space: ClassVar[dict[str, tuple[str, float, float]]] = {}

    @abstractmethod
    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        """Per-bar entries, exits, confidence and confirmations for `candles` under `params`."""

    def resolve_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with `params`; ValueError on a name the strategy does not take."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            known = ", ".join(sorted(self.default_params)) or "none"
            raise ValueError(f"strategy {self.name!r} has no parameter(s) {', '.join(unknown)} (takes: {known})")
        merged = {**self.default_params, **params}
        for key, default in self.default_params.items():
            value = merged[key]
            if isinstance(default, bool):
                merged[key] = bool(value)
            elif isinstance(default, int) and not isinstance(value, bool):
                if float(value) != int(value):
                    raise ValueError(f"strategy {self.name!r}: parameter {key} must be an integer, got {value!r}")
                merged[key] = int(value)
            elif isinstance(default, float):
                merged[key] = float(value)
        return merged

    def signal_factory(self, candles: pl.DataFrame,
                       param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Signals]:
        """For sweeps: a thread-safe function computing the signals of one (resolved) parameter
        set on `candles`. Strategies override it to share work across the sets (e.g. one moving
        average per distinct window); the default calls `signals`."""
        return lambda params: self.signals(candles, params)

    def run(self, candles: pl.DataFrame, params: dict[str, Any] | None = None) -> Signals:
        """Resolve parameters, compute signals and check their shape and ranges."""
        return self.signals(candles, self.resolve_params(params)).checked(candles.height)

    def __repr__(self) -> str:
        return f"<Strategy {self.name}>"


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at i when a[i] > b[i] and a[i-1] <= b[i-1] (NaN compares False: no cross in warm-up)."""
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] > b_arr[1:]) & (a[:-1] <= b_arr[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at i when a[i] < b[i] and a[i-1] >= b[i-1]."""
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] < b_arr[1:]) & (a[:-1] >= b_arr[:-1])
    return out


def column(candles: pl.DataFrame, name: str) -> np.ndarray:
    """A candle column as a contiguous float64 numpy array (zero-copy when possible)."""
    return np.ascontiguousarray(candles[name].to_numpy(), dtype=np.float64)
