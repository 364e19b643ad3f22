"""The strategy protocol: candles + parameters in, per-bar signals out.

A strategy is a pure function of its inputs. It never places orders, reads or writes files, or
touches the network; the backtest engine and the trader decide what to do with its signals, and
both gate entries through the same Rule 2 check (`nettrace_dagster.rules.entry_gate_mask`).

Signal timing: every array has one element per candle. `entries[i]` / `exits[i]` are decided with
the information available at the *close* of bar i; the engine fills them at the open of bar i + 1.
`confidence[i]` (in [0, 1]) and `confirmations[i]` (the number of evidence families agreeing,
`nettrace_dagster.strategies.evidence`) describe an entry signal at bar i; the gate reads them on
entry bars only.

Strategy code is user code: `Strategy.run` and `Strategy.guarded_factory` turn anything it raises
(SystemExit included, KeyboardInterrupt excepted) and any signals that break the protocol into a
one-line `StrategyError`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TypeVar

import numba as nb
import numpy as np
import polars as pl

from nettrace_dagster.strategies.evidence import FAMILIES

T = TypeVar("T")


class StrategyError(ValueError):
    """A strategy that cannot be loaded, failed while running, or broke the signal protocol.
    The message is one line naming the problem."""


def describe_exception(exc: BaseException) -> str:
    """One line for an exception raised by strategy code."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def guarded(call: Callable[[], T], what: str) -> T:
    """Run strategy code: Ctrl-C passes through; anything else it raises (sys.exit included: it
    must not end the process) becomes one StrategyError line, `what` and what happened."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise StrategyError(f"{what} {describe_exception(exc)}") from exc


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


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

    def checked(self, n: int, *, full: bool = True) -> Signals:
        """The same signals with canonical dtypes, or StrategyError naming what is wrong.

        `full=False` checks shapes and dtypes only, leaving the values of confidence and
        confirmations to the Rule 2 gate, which validates them on entry bars — the only bars it
        reads (`check_entry_scores`) — so sweeps pay O(entries), not O(bars), per parameter set."""
        entries = _flags(self.entries, "entries", n)
        exits = _flags(self.exits, "exits", n)
        confidence = _numbers(self.confidence, "confidence", n)
        confirmations = _numbers(self.confirmations, "confirmations", n)
        if full:
            check_entry_scores(confidence, confirmations, "")
        elif confirmations.dtype.kind not in "iu":  # casting to int64 below would hide 2.5 or NaN
            check_entry_scores(np.zeros(1), confirmations, "")
        return Signals(entries, exits, np.ascontiguousarray(confidence, dtype=np.float64),
                       np.ascontiguousarray(confirmations, dtype=np.int64))


def check_entry_scores(confidence: np.ndarray, confirmations: np.ndarray, where: str = " on an entry bar") -> None:
    """StrategyError unless confidence is finite in [0, 1] and confirmations are whole numbers in
    [0, len(FAMILIES)] (one per evidence family)."""
    conf = np.asarray(confidence).astype(np.float64, copy=False)
    bad = ~(np.isfinite(conf) & (conf >= 0.0) & (conf <= 1.0))
    if bad.any():
        raise StrategyError(f"signals.confidence must be finite and in [0, 1], got {float(conf[bad][0])!r}{where}")
    count = np.asarray(confirmations).astype(np.float64, copy=False)
    bad = ~(np.isfinite(count) & (count == np.floor(count)) & (count >= 0) & (count <= len(FAMILIES)))
    if bad.any():
        raise StrategyError(f"signals.confirmations must be whole numbers in [0, {len(FAMILIES)}] (one per "
                            f"evidence family), got {float(count[bad][0])!r}{where}")


def _array(value: Any, key: str, n: int) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise StrategyError(f"signals.{key} is not an array: {describe_exception(exc)}") from None
    if arr.ndim != 1 or arr.shape[0] != n:
        raise StrategyError(f"signals.{key} has shape {arr.shape}, expected ({n},) — one value per candle")
    return arr


def _flags(value: Any, key: str, n: int) -> np.ndarray:
    arr = _array(value, key, n)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr)
    # NaN or 0.5 would silently become True: only booleans or exact 0/1 numbers are flags.
    if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
        raise StrategyError(f"signals.{key} must be booleans (or 0/1), got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.bool_)


def _numbers(value: Any, key: str, n: int) -> np.ndarray:
    arr = _array(value, key, n)
    if arr.dtype.kind not in "biuf":
        raise StrategyError(f"signals.{key} must be numbers, got dtype {arr.dtype}")
    return arr


class Strategy(ABC):
    """Base class of every strategy (built-in, templated or generated).

    Subclasses set `name`, `default_params` (every parameter with its default), optionally
    `param_space` (name -> ("int"|"float", low, high): the range a value must lie in, and what
    optimizers search), `trigger_family` (the evidence family the entry trigger belongs to, left
    out of its confirmations: see `evidence.py`), and implement `signals`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_params: ClassVar[dict[str, Any]] = {}
    param_space: ClassVar[dict[str, tuple[str, float, float]]] = {}
    trigger_family: ClassVar[str | None] = None

    @abstractmethod
    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        """Per-bar entries, exits, confidence and confirmations for `candles` under `params`."""

    def resolve_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with `params`, each of its default's type: a number is finite and
        inside its `param_space` range, an int parameter refuses 2.5, a bool one wants true/false.
        ValueError naming the parameter otherwise (or a name the strategy does not take)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            known = ", ".join(sorted(self.default_params)) or "none"
            raise ValueError(f"strategy {self.name!r} has no parameter(s) {', '.join(unknown)} (takes: {known})")
        merged = {**self.default_params, **params}
        for key, default in self.default_params.items():
            merged[key] = self._coerce_param(key, default, merged[key])
        return merged

    def _coerce_param(self, key: str, default: Any, value: Any) -> Any:
        where = f"strategy {self.name!r}: parameter {key}"
        if isinstance(default, bool | np.bool_):
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{where} must be true or false, got {_short(value)}")
            return bool(value)
        if isinstance(default, numbers.Real):
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
                raise ValueError(f"{where} must be a number, got {_short(value)}")
            if not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number, got {_short(value)}")
            if isinstance(default, numbers.Integral):
                if value != math.floor(value):
                    raise ValueError(f"{where} must be an integer, got {_short(value)}")
                value = int(value)
            else:
                value = float(value)
            space = self.param_space.get(key)
            if space is not None and not space[1] <= value <= space[2]:
                raise ValueError(f"{where}={value:g} is outside its range [{space[1]:g}, {space[2]:g}]")
            return value
        if default is not None and not isinstance(value, type(default)):
            raise ValueError(f"{where} must be a {type(default).__name__}, got {_short(value)}")
        return value

    def signal_factory(self, candles: pl.DataFrame,
                       param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Signals]:
        """For sweeps: a thread-safe function computing the signals of one (resolved) parameter
        set on `candles`. Strategies override it to share work across the sets (e.g. one moving
        average per distinct window); the default calls `signals`."""
        return lambda params: self.signals(candles, params)

    def run(self, candles: pl.DataFrame, params: dict[str, Any] | None = None) -> Signals:
        """Resolve parameters, compute signals and check their shape and ranges. Whatever the
        strategy's code raises (sys.exit included) comes out as a one-line StrategyError."""
        resolved = self.resolve_params(params)
        return self.call_signals(lambda: self.signals(candles, resolved), candles.height)

    def call_signals(self, compute: Callable[[], Any], n: int, *, full: bool = True) -> Signals:
        """Run strategy code that returns signals; a StrategyError for anything but valid Signals."""
        try:
            out = compute()
        except KeyboardInterrupt:
            raise
        except StrategyError as exc:
            raise StrategyError(f"strategy {self.name!r}: {exc}") from exc
        except BaseException as exc:  # SystemExit too: strategy code must not end the process
            raise StrategyError(f"strategy {self.name!r}: signals() {describe_exception(exc)}") from exc
        if not isinstance(out, Signals):
            raise StrategyError(f"strategy {self.name!r}: signals() returned {type(out).__name__}, "
                                "expected Signals(entries, exits, confidence, confirmations)")
        try:
            return out.checked(n, full=full)
        except StrategyError as exc:
            raise StrategyError(f"strategy {self.name!r}: {exc}") from None

    def guarded_factory(self, candles: pl.DataFrame,
                        param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Signals]:
        """`signal_factory` with `run`'s guard: errors become StrategyError, and each set's
        signals are checked (shapes and dtypes here; values on entry bars by the gate)."""
        n = candles.height
        make = self._factory(candles, param_sets)
        return lambda params: self.call_signals(lambda: make(params), n, full=False)

    def _factory(self, candles: pl.DataFrame, param_sets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
        return guarded(lambda: self.signal_factory(candles, param_sets), f"strategy {self.name!r}: signal_factory()")

    def __repr__(self) -> str:
        return f"<Strategy {self.name}>"


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at i when a[i] > b[i] and a[i-1] <= b[i-1] (NaN compares False: no cross in warm-up)."""
    if _float_series(a) and np.ndim(b) == 0:  # a series against a level: one compiled pass
        return _crossed_level_nb(a, float(b), True)
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] > b_arr[1:]) & (a[:-1] <= b_arr[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at i when a[i] < b[i] and a[i-1] >= b[i-1]."""
    if _float_series(a) and np.ndim(b) == 0:
        return _crossed_level_nb(a, float(b), False)
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] < b_arr[1:]) & (a[:-1] >= b_arr[:-1])
    return out


def _float_series(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 1


@nb.njit(cache=True, nogil=True)
def _crossed_level_nb(a: np.ndarray, level: float, above: bool) -> np.ndarray:
    """`crossed_above(a, level)` (or `crossed_below`) of a float64 series: the same comparisons."""
    n = a.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        if above:
            out[i] = (a[i] > level) & (a[i - 1] <= level)
        else:
            out[i] = (a[i] < level) & (a[i - 1] >= level)
    return out


def column(candles: pl.DataFrame, name: str) -> np.ndarray:
    """A candle column as a contiguous float64 numpy array (zero-copy when possible)."""
    return np.ascontiguousarray(candles[name].to_numpy(), dtype=np.float64)
