"""Shared pieces of the promotion tests: a strategy whose parameters say on which bars it enters
and exits, a scripted market, and a pipeline on a fresh ledger with a settable clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.promotion.pipeline import Pipeline
from nettrace_dagster.strategies.base import Signals
from tests.scripted import bars


class ParamScript:
    """Enters on `params["entries"]` bars and exits on `params["exits"]` bars (Rule 2 passes)."""

    def run(self, candles: pl.DataFrame, params: dict[str, Any] | None = None) -> Signals:
        params = params or {}
        sig = Signals.empty(candles.height)
        for i in (i for i in params.get("entries", []) if i < candles.height):
            sig.entries[i], sig.confidence[i], sig.confirmations[i] = True, 0.9, 3
        for i in (i for i in params.get("exits", []) if i < candles.height):
            sig.exits[i] = True
        return sig


def install_param_script(monkeypatch: Any) -> None:
    import nettrace_dagster.trading.trader as trader_module

    monkeypatch.setattr(trader_module, "get_strategy", lambda name: ParamScript())


def param_set(entries: list[int], exits: list[int], **portfolio: float) -> dict[str, Any]:
    return {"portfolio": dict(portfolio), "strategies": {"scripted": {"entries": entries, "exits": exits}}}


class Clock:
    def __init__(self, t: float = 1_767_225_600.0) -> None:  # 2026-01-01 00:00 UTC
        self.t = t

    def __call__(self) -> float:
        return self.t


def world(tmp: Path, config: PromotionConfig | None = None, evaluator: Any = None,
          capital: float = 100.0) -> tuple[Ledger, ExecutionEngine, Coordinator, Pipeline, Clock]:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}", "NORMAL")  # no fsync: tests, not money
    clock = Clock()
    engine = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=tmp / "audit", initial_capital=capital,
                             clock=clock)
    coord = Coordinator(ledger, tmp / "audit", clock=clock)
    pipe = Pipeline(ledger, config or PromotionConfig(sleeve_capital=capital), audit_dir=tmp / "audit",
                    clock=clock, cold_evaluator=evaluator or (lambda ps, files: {"sharpe": 1.0}), coordinator=coord)
    return ledger, engine, coord, pipe, clock


def market(closes: list[float]) -> dict[str, pl.DataFrame]:
    return {"BTC-USDT": bars("BTC-USDT", closes)}
