"""Dagster resources: thin handles on the domain objects.

`build_resources(settings)` is the one place that turns settings into resources; the
Definitions, `nettrace demo` and the tests all call it, so a run from the UI and a run from the
CLI see the same configuration.

Run config is not trusted. Anyone with the UI's launchpad can launch any job with any run config,
and Dagster lets run config replace every config field of a resource (the values given in code
are only defaults). So whatever can move money, change where prices come from or reveal a secret
is *pinned*: read from the settings (the environment of the process that loads the code location)
when the resource is built, held in a private attribute, and never part of the config schema. A
run config naming a pinned value then fails Dagster's config validation before any step runs, and
the UI never displays it (a ledger URL may hold a password). Only harmless knobs stay config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from nettrace_dagster.json_io import JsonIOManager
from nettrace_dagster.market.lake import AtomicParquetIOManager, Lake
from nettrace_dagster.market.sources import CandleSource, make_source
from nettrace_dagster.regimes import RegimeConfig
from nettrace_dagster.settings import Settings, SettingsError, load_settings
from nettrace_dagster.warehouse import Warehouse


def ccxt_base_url_setting(settings: Settings) -> str | None:
    """NETTRACE_CCXT_BASE_URL: a loopback fake for tests, else None (ccxt's own URLs).

    Loopback only: with keys set, the broker signs requests and sends the API key to this host.
    """
    url = settings.nettrace_ccxt_base_url.strip()
    if not url:
        return None
    from nettrace_dagster.market.ccxt_source import check_loopback_url  # imports ccxt: only when set

    try:
        return check_loopback_url(url)
    except ValueError as exc:
        raise SettingsError(f"NETTRACE_CCXT_BASE_URL: {exc}") from None


class PinnedResource(dg.ConfigurableResource):
    """A resource with pinned values (see the module docstring) in `_pinned`.

    Dagster builds a fresh instance from the config fields alone for every run (and for every
    context it binds), so the pinned values are carried over to that copy here; they never pass
    through run config. A copy that lost them (should Dagster change how it copies) reads the
    environment instead, which is where they came from in the first place.
    """

    _pinned: dict[str, Any] = PrivateAttr(default_factory=dict)

    def _with_updated_values(self, values: Mapping[str, Any] | None) -> PinnedResource:
        copy = super()._with_updated_values(values)
        copy._pinned = dict(self._pinned)
        return copy  # type: ignore[return-value]


# Where prices come from decides what the trader buys: the environment's choice, never a run's.
_MARKET_PINNED = ("source", "lake_dir", "timeframe", "import_dir", "ccxt_exchange", "gap_tolerance",
                  "ccxt_base_url")


def _market_defaults(settings: Settings) -> dict[str, Any]:
    return {"source": settings.market_source, "lake_dir": str(settings.lake_dir),
            "timeframe": settings.nettrace_timeframe, "import_dir": str(settings.nettrace_import_dir),
            "ccxt_exchange": settings.nettrace_ccxt_exchange, "gap_tolerance": settings.nettrace_gap_tolerance,
            "ccxt_base_url": ccxt_base_url_setting(settings)}


class MarketDataResource(PinnedResource):
    """Where candles come from (`sim`, `ccxt` or `file`) and where they are stored.

    The source, exchange, base URL, timeframe, folders and gap tolerance are pinned: keyword
    arguments in code (tests) or the settings; unnamed ones come from the environment. The config
    fields below only change how much history is fetched or simulated and how often a request is
    tried.
    """

    sim_seed: int = 7
    sim_bars: int = 10_080
    ccxt_history_days: int = 7
    ccxt_max_retries: int = 5

    def __init__(self, **values: Any) -> None:
        pinned = {name: values.pop(name) for name in _MARKET_PINNED if name in values}
        super().__init__(**values)
        if pinned.get("ccxt_base_url"):
            from nettrace_dagster.market.ccxt_source import check_loopback_url

            pinned["ccxt_base_url"] = check_loopback_url(pinned["ccxt_base_url"])
        self._pinned = pinned

    def _value(self, name: str) -> Any:
        if name not in self._pinned:
            self._pinned.update({k: v for k, v in _market_defaults(load_settings()).items()
                                 if k not in self._pinned})
        return self._pinned[name]

    @property
    def source(self) -> str:
        return self._value("source")

    @property
    def lake_dir(self) -> str:
        return self._value("lake_dir")

    @property
    def timeframe(self) -> str:
        return self._value("timeframe")

    @property
    def import_dir(self) -> str:
        return self._value("import_dir")

    @property
    def ccxt_exchange(self) -> str:
        return self._value("ccxt_exchange")

    @property
    def gap_tolerance(self) -> float:
        return float(self._value("gap_tolerance"))

    @property
    def ccxt_base_url(self) -> str | None:
        return self._value("ccxt_base_url")

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


class LakeIOManager(AtomicParquetIOManager):
    """The lake's IO manager with its folder pinned (see the module docstring): the settings' lake,
    on whichever machine runs the step. `base_dir` stays in Dagster's schema (inherited), but a run
    config that names another folder fails the step before anything is read or written."""

    _lake_dir: str | None = PrivateAttr(default=None)

    def __init__(self, lake_dir: str | None = None, **values: Any) -> None:
        super().__init__(**values)
        self._lake_dir = lake_dir

    def _with_updated_values(self, values: Mapping[str, Any] | None) -> LakeIOManager:
        copy = super()._with_updated_values(values)
        copy._lake_dir = self._lake_dir
        return copy  # type: ignore[return-value]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from upath import UPath

        lake = Path(self._lake_dir or load_settings().lake_dir).resolve()
        if self.base_dir is not None and Path(self.base_dir).resolve() != lake:
            raise SettingsError(f"io_manager base_dir {self.base_dir!r} refused: the lake is pinned to {lake} "
                                "by NETTRACE_HOME, never chosen by run config")
        self._base_path = UPath(str(lake))


def build_resources(settings: Settings) -> dict[str, Any]:
    lake = str(settings.lake_dir)
    resources: dict[str, Any] = {
        "io_manager": LakeIOManager(lake_dir=lake),
        "json_io_manager": JsonIOManager(base_dir=lake),
        "market": MarketDataResource(
            **_market_defaults(settings), sim_seed=settings.nettrace_sim_seed, sim_bars=settings.nettrace_sim_bars,
            ccxt_history_days=settings.nettrace_ccxt_history_days,
            ccxt_max_retries=settings.nettrace_ccxt_max_retries),
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
