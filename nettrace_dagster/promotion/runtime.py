"""The pipeline as the settings configure it (the CLI, the sensors, the jobs and the assets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import polars as pl

from nettrace_dagster.execution.risk import ACCOUNT_OF_MODE, trading_mode
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.market.lake import Lake
from nettrace_dagster.paramsets.in_force import InForce
from nettrace_dagster.promotion.cold import make_cold_evaluator
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.promotion.pipeline import Pipeline
from nettrace_dagster.rules import load_rules


def lake_candles(settings: Any) -> dict[str, pl.DataFrame]:
    lake = Lake(settings.lake_dir)
    return {s: lake.read_candles(s) for s in settings.symbols if lake.exists("candles", s)}


def pipeline_from_settings(settings: Any, clock: Callable[[], float] = time.time) -> Pipeline:
    config = PromotionConfig.from_settings(settings)
    evaluator = make_cold_evaluator(lambda: lake_candles(settings), config.cold_lookback_days,
                                    float(settings.nettrace_initial_capital_usd), load_rules(settings))
    return Pipeline(ledger_of(settings), config, audit_dir=settings.audit_dir,
                    main_account=ACCOUNT_OF_MODE[trading_mode(settings)], clock=clock, cold_evaluator=evaluator,
                    on_release=lambda new: release_in_force(settings, new))


def release_in_force(settings: Any, new: InForce) -> None:
    """A set that went FULL becomes a release put in force; the deploy sensor rolls it out."""
    from nettrace_dagster.deploy.release import create_release

    create_release(new.param_set, {name: f["path"] for name, f in new.strategy_files.items()},
                   source=f"promotion: candidate {new.candidate_id}", settings=settings, ledger=ledger_of(settings))
