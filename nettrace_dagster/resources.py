"""Dagster resources: thin, configurable handles on the domain objects.

`build_resources(settings)` is the one place that turns settings into resources; the
Definitions, `nettrace demo` and the tests all call it, so a run from the UI and a run from the
CLI see the same configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from nettrace_dagster.market.lake import AtomicParquetIOManager, Lake
from nettrace_dagster.market.sources import CandleSource, make_source
from nettrace_dagster.regimes import RegimeConfig
from nettrace_dagster.settings import Settings
from nettrace_dagster.warehouse import Warehouse


class MarketDataResource(dg.ConfigurableResource):
    """Where candles come from (`sim`, `ccxt` or `file`) and where they are stored."""

    source: str = "sim"
    lake_dir: str
    timeframe: str = "1m"
    sim_seed: int = 7
    sim_bars: int = 10_080
    import_dir: str = "import"
    ccxt_exchange: str = "binance"
    ccxt_history_days: int = 7
    ccxt_max_retries: int = 5
    gap_tolerance: float = 0.01
    ccxt_base_url: str | None = None  # tests point ccxt at a loopback fake exchange

    def client(self, progress=None, api_budget=None) -> CandleSource:
        return make_source(self.source, timeframe=self.timeframe, sim_seed=self.sim_seed,
                           sim_bars=self.sim_bars, import_dir=Path(self.import_dir),
                           ccxt_exchange=self.ccxt_exchange, ccxt_history_days=self.ccxt_history_days,
                           ccxt_max_retries=self.ccxt_max_retries, ccxt_base_url=self.ccxt_base_url,
                           progress=progress, api_budget=api_budget)

    @property
    def lake(self) -> Lake:
        return Lake(Path(self.lake_dir))


class RegimeResource(dg.ConfigurableResource):
    """Thresholds and window of the regime detector (see `nettrace_dagster.regimes`)."""

    bull_threshold: float = 0.01
    bear_threshold: float = -0.01
    window: int = 300

    def config(self) -> RegimeConfig:
        return RegimeConfig(self.bull_threshold, self.bear_threshold, self.window)


class WarehouseResource(dg.ConfigurableResource):
    """DuckDB over the lake and audit logs; lock-free for concurrent runs."""

    lake_dir: str
    audit_dir: str

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.lake_dir), Path(self.audit_dir))


def build_resources(settings: Settings) -> dict[str, Any]:
    lake = str(settings.lake_dir)
    resources: dict[str, Any] = {
        "io_manager": AtomicParquetIOManager(base_dir=lake),
        "market": MarketDataResource(
            source=settings.market_source, lake_dir=lake, timeframe=settings.nettrace_timeframe,
            sim_seed=settings.nettrace_sim_seed, sim_bars=settings.nettrace_sim_bars,
            import_dir=str(settings.nettrace_import_dir), ccxt_exchange=settings.nettrace_ccxt_exchange,
            ccxt_history_days=settings.nettrace_ccxt_history_days,
            ccxt_max_retries=settings.nettrace_ccxt_max_retries,
            gap_tolerance=settings.nettrace_gap_tolerance),
        "regime": RegimeResource(bull_threshold=settings.regime_bull_threshold,
                                 bear_threshold=settings.regime_bear_threshold,
                                 window=settings.nettrace_regime_window),
        "warehouse": WarehouseResource(lake_dir=lake, audit_dir=str(settings.audit_dir)),
    }
    from nettrace_dagster.execution.resource import (
        ExecutionResource,  # the execution layer (rules refused at load)
    )

    resources["execution"] = ExecutionResource.from_settings(settings)
    return resources
