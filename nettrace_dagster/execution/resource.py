"""`ExecutionResource`: the Dagster handle on the execution engine and the coordinator.

Config holds nothing secret: the exchange keys are read from the environment
(NETTRACE_EXCHANGE_API_KEY / _SECRET) only when the ccxt broker is built, and only when
`live_trading` is on. The rules are loaded (and any loosening refused) when the resource is
built from settings, i.e. when the code location loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.broker import Broker
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.db import open_ledger
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.execution.operations import HardstopResult, MarkResult
from nettrace_dagster.execution.reconcile import ReconcileReport
from nettrace_dagster.rules import Rules, load_rules
from nettrace_dagster.settings import Settings, SettingsError, load_settings


def catch_up_bars(settings: Settings) -> int:
    """NETTRACE_TRADER_CATCH_UP_BARS, else one simulated day on `sim` (its market walks in bars,
    not wall time) and 1 bar on real markets (a signal is only traded while it is fresh)."""
    raw = settings.nettrace_trader_catch_up_bars.strip()
    if raw:
        if not raw.isdigit():
            raise SettingsError(f"NETTRACE_TRADER_CATCH_UP_BARS={raw!r} is not a whole number of bars")
        return max(1, int(raw))
    return 1440 if settings.market_source == "sim" else 1


class ExecutionResource(dg.ConfigurableResource):
    """Every order goes through here: rules, ledger (`ledger_url`), broker (paper by default)."""

    ledger_url: str
    audit_dir: str
    account: str = "main"
    live_trading: bool = False  # the second switch: the ccxt broker also needs keys in the environment
    initial_capital_usd: float = 100.0
    fee_rate: float = 0.001
    slippage_bps: float = 5.0
    min_order_usd: float = 5.0
    ccxt_exchange: str = "binance"
    ccxt_base_url: str | None = None  # tests point the ccxt broker at a loopback fake
    catch_up_bars: int = 1  # bars a tick may trade after its cursor (1 on live markets: no stale signals)

    _engine: ExecutionEngine | None = PrivateAttr(default=None)
    _coordinator: Coordinator | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionResource:
        load_rules(settings)  # refuse a loosening rule now, at load, not at the first order
        return cls(ledger_url=settings.ledger_url, audit_dir=str(settings.audit_dir),
                   live_trading=bool(settings.nettrace_live_trading),
                   initial_capital_usd=float(settings.nettrace_initial_capital_usd),
                   ccxt_exchange=settings.nettrace_ccxt_exchange, catch_up_bars=catch_up_bars(settings))

    # --- the domain objects -------------------------------------------------------------------
    def rules(self) -> Rules:
        return load_rules(load_settings())

    def coordinator(self) -> Coordinator:
        if self._coordinator is None:
            self._coordinator = Coordinator(open_ledger(self.ledger_url), self.rules(), Path(self.audit_dir),
                                            self.account, self.initial_capital_usd)
        return self._coordinator

    def broker(self) -> Broker:
        costs = CostModel(self.fee_rate, self.slippage_bps)
        if not self.live_trading:
            from nettrace_dagster.execution.paper import PaperBroker
            return PaperBroker(open_ledger(self.ledger_url), costs)
        from nettrace_dagster.execution.ccxt_broker import CcxtBroker
        settings = load_settings()
        return CcxtBroker(self.ccxt_exchange, settings.nettrace_exchange_api_key,
                          settings.nettrace_exchange_api_secret, self.live_trading, base_url=self.ccxt_base_url,
                          api_budget=lambda ex: self.coordinator().api_call(ex), fee_rate=self.fee_rate)

    def engine(self) -> ExecutionEngine:
        if self._engine is None:
            self._engine = ExecutionEngine(
                open_ledger(self.ledger_url), self.broker(), self.rules(), CostModel(self.fee_rate, self.slippage_bps),
                Path(self.audit_dir), self.account, self.initial_capital_usd, self.min_order_usd)
        return self._engine

    # --- what assets and jobs call ------------------------------------------------------------
    def submit(self, intent: Intent) -> Decision:
        """Approve (sized) and place, or reject with reasons."""
        return self.engine().submit(intent)

    def exit(self, strategy: str, symbol: str, price: float, key: str, qty: float | None = None) -> Decision:
        """Sell a strategy's position (all of it by default). Always allowed."""
        return self.engine().submit(Intent(strategy, symbol, "exit", price, key, qty=qty, account=self.account))

    def hardstop(self, on: bool, reason: str = "", reset_peak: bool = False, by: str = "dagster") -> HardstopResult:
        return self.engine().set_hardstop(on, reason, by, reset_peak)

    def reconcile(self) -> ReconcileReport:
        return self.engine().reconcile()

    def mark(self, prices: dict[str, float]) -> MarkResult:
        return self.engine().mark(prices)

    def status(self) -> dict[str, Any]:
        return self.engine().status()
