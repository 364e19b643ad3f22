"""The sandboxed child: load one strategy file, compute its signals on the candles the parent put
in the scratch folder, write them back there. Started by `sandbox.run_sandbox` only.

Order matters: everything the strategy may use is imported (and numba's compiled indicators
loaded) while the process can still read the package; then `lockdown.lock_down` raises the walls;
only then is the strategy's source compiled and run. Anything the strategy does — raising,
sys.exit, returning garbage — ends as {"ok": false, "error": ...} in out.json; a crash, a kill
or a missing out.json is the parent's to report.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REQUEST, CANDLES, SOURCE, OUTPUT = "request.json", "candles.parquet", "strategy.py", "out.json"
MODULE_NAME = "nettrace_sandboxed_strategy"


def _preload() -> None:
    """Import every module a strategy may import, so none is read from disk after the lockdown."""
    import importlib

    from nettrace_dagster.validation.policy import ALLOWED_IMPORTS

    for name in sorted(ALLOWED_IMPORTS):
        importlib.import_module(name)


def _warm_up(candles: Any) -> None:
    """Load (or compile) the numba kernels while the package's cache is still readable."""
    from nettrace_dagster.strategies.evidence import confirm
    from nettrace_dagster.strategies.indicators import crosses, roc, rolling_std, rsi, sma

    close = candles["close"].to_numpy().astype("float64")
    confirm(candles, None)
    sma(close, 5), rolling_std(close, 5), rsi(close, 5), roc(close, 5), crosses(close, close)


def _signals_dict(signals: Any) -> dict[str, list[Any]]:
    return {"entries": signals.entries.astype(bool).tolist(), "exits": signals.exits.astype(bool).tolist(),
            "confidence": signals.confidence.astype(float).tolist(),
            "confirmations": signals.confirmations.astype(int).tolist()}


def _load(source: str) -> Any:
    """The strategy instance, checked like `registry.load_strategy_file` checks a file."""
    import types

    from nettrace_dagster.strategies.base import guarded
    from nettrace_dagster.strategies.registry import check_strategy_class, strategy_classes_in

    module = types.ModuleType(MODULE_NAME)
    module.__file__ = SOURCE
    sys.modules[MODULE_NAME] = module
    code = compile(source, SOURCE, "exec")
    guarded(lambda: exec(code, module.__dict__), "importing it")  # noqa: S102 - inside the walls
    classes = guarded(lambda: strategy_classes_in(module), "listing its classes")
    if len(classes) != 1:
        raise ValueError(f"defines {len(classes)} Strategy subclasses, expected exactly 1")
    check_strategy_class(classes[0], SOURCE)
    return guarded(classes[0], f"{classes[0].__name__}()")


def _describe(strategy: Any) -> dict[str, Any]:
    cls = type(strategy)
    return {"name": cls.name, "class": cls.__name__, "description": cls.description,
            "default_params": cls.default_params, "param_space": {k: list(v) for k, v in cls.param_space.items()},
            "trigger_family": cls.trigger_family}


def _run(request: dict[str, Any], candles: Any, source: str) -> dict[str, Any]:
    import numpy as np

    strategy = _load(source)
    out: dict[str, Any] = {"ok": True, "strategy": _describe(strategy)}
    params = request.get("params") or {}
    started = time.perf_counter()
    signals = strategy.run(candles, params)
    out["seconds"] = time.perf_counter() - started
    out["signals"] = _signals_dict(signals)
    if request.get("mode") == "validate":
        # Deterministic: the same inputs give the same signals. Causal: signals on a prefix of the
        # candles equal the full run's on that prefix (no look-ahead into later bars).
        again = strategy.run(candles, params)
        same = all(np.array_equal(a, b, equal_nan=a.dtype.kind == "f") for a, b in zip(signals, again, strict=True))
        cut = max(1, candles.height * 2 // 3)
        prefix = strategy.run(candles.head(cut), params)
        causal = bool(np.array_equal(prefix.entries, signals.entries[:cut])
                      and np.array_equal(prefix.exits, signals.exits[:cut]))
        out["checks"] = {"deterministic": bool(same), "causal": causal}
    return out


def main() -> None:
    marks = {"boot": time.monotonic()}  # CLOCK_MONOTONIC: comparable with the parent's clock
    scratch = Path.cwd()
    request = json.loads((scratch / REQUEST).read_text())
    import polars as pl

    from nettrace_dagster.strategies.base import describe_exception
    from nettrace_dagster.validation.lockdown import lock_down

    _preload()
    marks["imported"] = time.monotonic()
    candles = pl.read_parquet(scratch / CANDLES)
    _warm_up(candles.head(60))
    marks["warm"] = time.monotonic()
    source = (scratch / SOURCE).read_text(encoding="utf-8")
    if request.get("lockdown", True):
        lock_down(str(scratch), list(request.get("hide", [])), list(request.get("keep", [])))
    marks["ready"] = time.monotonic()
    try:
        result = _run(request, candles, source)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - whatever the strategy raised, SystemExit included
        result = {"ok": False, "error": describe_exception(exc)}
    marks["done"] = time.monotonic()
    result["marks"] = marks
    (scratch / OUTPUT).write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is on disk: skip the interpreter's teardown (polars' and numba's take ~0.1-0.3 s).
    os._exit(0)


if __name__ == "__main__":
    main()
