"""A strategy file that passed validation, usable wherever a `Strategy` is — its code runs only
inside the sandbox.

The parent knows the strategy from what the sandboxed validation run reported (name, defaults,
parameter space, trigger family), so it resolves and checks parameters itself; `signals` ships
the candles and parameters into a fresh sandbox and turns the arrays that come back into
`Signals` (checked by `Strategy.run` like any strategy's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from nettrace_dagster.strategies.base import Signals, Strategy, StrategyError
from nettrace_dagster.strategies.registry import check_strategy_class
from nettrace_dagster.validation.report import ValidationReport
from nettrace_dagster.validation.sandbox import Limits, run_sandbox
from nettrace_dagster.validation.validate import limits_from_settings, read_source, validate_source


class StrategyRejected(Exception):
    """The file did not pass validation; `report` says which layer stopped it."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.one_line())
        self.report = report


class SandboxedStrategy(Strategy):
    """Base of the per-file classes `load_validated` builds; never instantiated directly."""

    source: ClassVar[str] = ""
    limits: ClassVar[Limits] = Limits()

    def signals(self, candles: pl.DataFrame, params: dict[str, Any]) -> Signals:
        run = run_sandbox(self.source, candles, params=params, mode="signals", limits=self.limits)
        if not run.ok or run.signals is None:
            raise StrategyError(f"sandbox: {run.error or 'no signals came back'}")
        s = run.signals
        return Signals(s["entries"], s["exits"], s["confidence"], s["confirmations"])


def from_report(source: str, report: ValidationReport, limits: Limits | None = None) -> SandboxedStrategy:
    """The sandboxed stand-in for a file whose report passed."""
    if not report.passed or not report.strategy:
        raise StrategyRejected(report)
    meta = report.strategy
    attrs = {"name": meta["name"], "description": str(meta.get("description") or ""),
             "default_params": dict(meta["default_params"]),
             "param_space": {k: tuple(v) for k, v in (meta.get("param_space") or {}).items()},
             "trigger_family": meta.get("trigger_family"), "source": source,
             "limits": limits or limits_from_settings()}
    cls = type(str(meta.get("class") or "Sandboxed"), (SandboxedStrategy,), attrs)
    check_strategy_class(cls, report.path)
    return cls()


def load_validated(path: Path | str, limits: Limits | None = None) -> tuple[SandboxedStrategy, ValidationReport]:
    """Validate the file (six layers) and return its sandboxed stand-in; StrategyRejected if a
    layer rejects it, UnusableInput if it is not a readable strategy file."""
    import hashlib

    source, raw = read_source(path)
    report = validate_source(source, str(path), hashlib.sha256(raw).hexdigest(), limits=limits)
    return from_report(source, report, limits), report
