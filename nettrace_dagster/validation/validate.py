"""`validate_file`: the six layers, cheapest first, stopping at the first that fails."""

from __future__ import annotations

import ast
import hashlib
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from nettrace_dagster.strategies.base import Signals, StrategyError
from nettrace_dagster.validation.layers import STATIC_LAYERS, Layer, parse
from nettrace_dagster.validation.report import LayerResult, UnusableInput, ValidationReport
from nettrace_dagster.validation.sandbox import Limits, SandboxResult, SandboxUnavailable, run_sandbox

SAMPLE_BARS = 1500  # enough for the evidence windows (regime 300, volatility baseline 200)
SLOW_SECONDS = 5.0  # a strategy slower than this on the sample is flagged for review


@lru_cache(maxsize=1)
def sample_candles() -> pl.DataFrame:
    """Deterministic simulated candles (seeded regime-switching prices) the sandbox runs on."""
    from nettrace_dagster.market.sim import simulate

    return simulate("BTC-USDT", SAMPLE_BARS, seed=7).select(["timestamp", "open", "high", "low", "close", "volume"])


def read_source(path: Path | str) -> tuple[str, bytes]:
    """The file's text and bytes; UnusableInput when it is not a readable UTF-8 Python file."""
    path = Path(path)
    if path.is_dir():
        raise UnusableInput(f"{path}: is a directory, not a strategy .py file")
    if not path.exists():
        raise UnusableInput(f"{path}: no such file")
    if not path.is_file():
        raise UnusableInput(f"{path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnusableInput(f"{path}: cannot be read ({exc.strerror})") from None
    if not raw.strip():
        raise UnusableInput(f"{path}: is empty")
    try:
        return raw.decode("utf-8-sig"), raw  # a BOM is UTF-8 too
    except UnicodeDecodeError as exc:
        raise UnusableInput(f"{path}: is not UTF-8 text (byte {exc.start})") from None


def validate_file(path: Path | str, *, limits: Limits | None = None,
                  candles: pl.DataFrame | None = None) -> ValidationReport:
    """Run the six layers on one strategy file. `report.passed` is True when all six passed;
    `report.status` is validated / in_review (passed with warnings) / rejected. Raises
    UnusableInput (not a report) for a path that is not a readable UTF-8 file."""
    source, raw = read_source(path)
    return validate_source(source, str(path), hashlib.sha256(raw).hexdigest(), limits=limits, candles=candles)


def validate_source(source: str, path: str, sha256: str | None = None, *, limits: Limits | None = None,
                    candles: pl.DataFrame | None = None) -> ValidationReport:
    started = time.perf_counter()
    report = ValidationReport(path, sha256 or hashlib.sha256(source.encode("utf-8")).hexdigest())
    tree, static = parse(source, path)
    report.layers.append(static)
    if tree is not None and static.passed:
        for layer in STATIC_LAYERS:
            result = _run_layer(layer, source, tree, path)
            report.layers.append(result)
            if not result.passed:
                break
        else:
            sandbox, strategy = sandbox_layer(source, candles, limits or limits_from_settings())
            report.layers.append(sandbox)
            report.strategy = strategy
    report.seconds = time.perf_counter() - started
    return report


def _run_layer(layer: Layer, source: str, tree: ast.Module, path: str) -> LayerResult:
    """A layer's verdict; code it cannot even walk (nested past the interpreter's recursion
    limit, say) is rejected by that layer with one line, never a traceback."""
    try:
        return layer(source, tree, path)
    except (RecursionError, MemoryError) as exc:
        return LayerResult(layer.__name__, False, [f"cannot be checked: {type(exc).__name__} (nested too deeply?)"])
    except Exception as exc:  # noqa: BLE001 - an unforeseen construct: reject, say what happened
        return LayerResult(layer.__name__, False, [f"cannot be checked: {type(exc).__name__}: {exc}"[:300]])


def limits_from_settings() -> Limits:
    from nettrace_dagster.settings import load_settings

    settings = load_settings()
    timeout = float(settings.validation_sandbox_timeout_s)
    return Limits(wall_s=timeout, cpu_s=max(1, int(timeout)), memory_mb=int(settings.validation_sandbox_memory_mb))


def sandbox_layer(source: str, candles: pl.DataFrame | None, limits: Limits) -> tuple[LayerResult, dict | None]:
    """Run the strategy on sample candles inside the sandbox; check what comes back."""
    result = LayerResult("sandbox", False)
    candles = candles if candles is not None else sample_candles()
    try:
        run = run_sandbox(source, candles, mode="validate", limits=limits)
    except SandboxUnavailable as exc:
        result.errors.append(f"cannot run strategy code safely here: {exc}")
        return result, None
    if not run.ok:
        result.errors.append(run.error or "the sandboxed run failed")
        return result, None
    problem = check_output(run, candles.height)
    if problem:
        result.errors.append(problem)
        return result, run.strategy
    if not run.checks.get("deterministic", True):
        result.warnings.append("two runs on the same candles gave different signals (not deterministic)")
    if not run.checks.get("causal", True):
        result.warnings.append("signals on the first 2/3 of the candles differ from the full run's: it looks "
                               "ahead at later bars")
    if run.signals is not None and not run.signals["entries"].any():
        result.warnings.append(f"no entry signal on {candles.height} sample candles: it may never trade")
    if run.seconds > SLOW_SECONDS:
        result.warnings.append(f"took {run.seconds:.1f} s on {candles.height} candles")
    result.passed = True
    return result, run.strategy


def check_output(run: SandboxResult, n: int) -> str | None:
    """The output schema: strategy metadata and four per-bar arrays that pass Signals.checked."""
    meta = run.strategy
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or \
            not isinstance(meta.get("default_params"), dict):
        return "the sandboxed run returned no strategy description"
    if run.signals is None:
        return "the sandboxed run returned no signals"
    try:
        to_signals(run.signals, n)
    except StrategyError as exc:
        return f"output schema: {exc}"
    return None


def to_signals(arrays: dict[str, np.ndarray], n: int) -> Signals:
    """Signals from the sandbox's arrays, fully checked (shape, dtype, confidence and confirmations)."""
    return Signals(arrays["entries"], arrays["exits"], arrays["confidence"], arrays["confirmations"]).checked(n)
