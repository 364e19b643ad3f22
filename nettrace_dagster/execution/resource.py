"""`ExecutionResource`: the Dagster handle on the execution engine and the coordinator.

It has no config fields at all. Everything it holds can move money or is a secret — the live
switch, ledger URL, audit folder, account, exchange id and URL, keys, rules, initial capital,
fees, minimum order, catch-up bars — so it is pinned (see `nettrace_dagster.resources`): taken
from the settings the resource was built from, i.e. the environment of the process that loaded
the code location. A run config that names any of it (the UI's launchpad accepts any) fails
Dagster's config validation before a step runs, and the UI shows none of it.

Live trading therefore needs NETTRACE_LIVE_TRADING=1 *and* the keys, in the environment. The
account follows the switch: "live" with it, "main" (paper) without, so paper and live money never
share a ledger account. The rules are loaded (and any loosening refused) when the resource is
built from settings, i.e. when the code location loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.broker import Broker, BrokerOrder, BrokerUnknown, OrderRequest
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.engine import ExecutionEngine, HardstopResult, MarkResult
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.execution.reconcile import ReconcileReport
from nettrace_dagster.execution.risk import ACCOUNT_OF_MODE, trading_mode
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.resources import PinnedResource, ccxt_base_url_setting
from nettrace_dagster.rules import Rules, load_rules
from nettrace_dagster.settings import Settings, SettingsError, load_settings

FEE_RATE = 0.001  # Binance spot taker fee: paper fills pay it, sizing reserves it
SLIPPAGE_BPS = 5.0
MIN_ORDER_USD = 5.0  # below most venues' minimum notional


def catch_up_bars(settings: Settings) -> int:
    """NETTRACE_TRADER_CATCH_UP_BARS, else one simulated day on `sim` (its market walks in bars,
    not wall time) and 1 bar on real markets (a signal is only traded while it is fresh)."""
    raw = settings.nettrace_trader_catch_up_bars.strip()
    if raw:
        if not raw.isdigit():
            raise SettingsError(f"NETTRACE_TRADER_CATCH_UP_BARS={raw!r} is not a whole number of bars")
        return max(1, int(raw))
    return 1440 if settings.market_source == "sim" else 1


class LedgerOnlyBroker:
    """Stands in for the venue where only the ledger is needed (HARDSTOP, status, marks), so those
    work without keys or a reachable exchange. It carries the real broker's name and mode (the
    account's orders and capital priority depend on them) and sends nothing: every request says
    the outcome is unknown, which leaves any order exactly as it was for the real reconciliation."""

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode

    def _refuse(self) -> BrokerUnknown:
        return BrokerUnknown("ledger-only engine: nothing was sent to the venue")

    def place(self, request: OrderRequest) -> BrokerOrder:
        raise self._refuse()

    def fetch(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        raise self._refuse()

    def cancel(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        raise self._refuse()


class ExecutionResource(PinnedResource):
    """Every order goes through here: rules, ledger, broker (paper unless the environment has
    NETTRACE_LIVE_TRADING=1 and keys). Nothing here is run config; see the module docstring."""

    _engine: ExecutionEngine | None = PrivateAttr(default=None)
    _ledger_engine: ExecutionEngine | None = PrivateAttr(default=None)
    _coordinator: Coordinator | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        # Pydantic would silently drop unknown keywords: say so instead (names only: values may be
        # secrets), or a caller believes it chose a ledger or switched live trading on.
        if values:
            raise TypeError(f"ExecutionResource has no config ({', '.join(sorted(values))}): its values come "
                            "from the settings; build it with ExecutionResource.from_settings(settings)")
        super().__init__()

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionResource:
        load_rules(settings)  # refuse a loosening rule now, at load, not at the first order
        ccxt_base_url_setting(settings)  # and a test URL that is not loopback
        resource = cls()
        resource._pinned = {"settings": settings}
        return resource

    # --- the pinned values (read-only: there is nothing to set them from but the settings) ------
    @property
    def settings(self) -> Settings:
        if "settings" not in self._pinned:  # built bare, or a copy Dagster made without them
            self._pinned["settings"] = load_settings()
        return self._pinned["settings"]

    @property
    def ledger_url(self) -> str:
        return self.settings.ledger_url

    @property
    def audit_dir(self) -> str:
        return str(self.settings.audit_dir)

    @property
    def mode(self) -> str:
        """`live` when the environment's switch is on (the ccxt broker also needs the keys)."""
        return trading_mode(self.settings)

    @property
    def live_trading(self) -> bool:
        return self.mode == "live"

    @property
    def account(self) -> str:
        """"live" or "main" (paper), the same mapping the kill switch and `status` use."""
        return ACCOUNT_OF_MODE[self.mode]

    @property
    def initial_capital_usd(self) -> float:
        return float(self.settings.nettrace_initial_capital_usd)

    @property
    def fee_rate(self) -> float:
        return FEE_RATE

    @property
    def slippage_bps(self) -> float:
        return SLIPPAGE_BPS

    @property
    def min_order_usd(self) -> float:
        return MIN_ORDER_USD

    @property
    def ccxt_exchange(self) -> str:
        return self.settings.nettrace_ccxt_exchange

    @property
    def ccxt_base_url(self) -> str | None:
        return ccxt_base_url_setting(self.settings)

    @property
    def catch_up_bars(self) -> int:
        """Bars a tick may trade after its cursor (1 on live markets: no stale signals)."""
        return catch_up_bars(self.settings)

    # --- the domain objects -------------------------------------------------------------------
    def rules(self) -> Rules:
        return load_rules(self.settings)

    def coordinator(self) -> Coordinator:
        if self._coordinator is None:
            self._coordinator = Coordinator(ledger_of(self.settings), Path(self.audit_dir), self.account)
        return self._coordinator

    def broker(self) -> Broker:
        """The venue: paper, or (switch and keys in the environment) the exchange through ccxt.
        Raises `LiveTradingDisabled` when the switch is on and a key is missing."""
        costs = CostModel(self.fee_rate, self.slippage_bps)
        if not self.live_trading:
            from nettrace_dagster.execution.paper import PaperBroker
            return PaperBroker(ledger_of(self.settings), costs)
        from nettrace_dagster.execution.ccxt_broker import CcxtBroker
        return CcxtBroker(self.ccxt_exchange, self.settings.nettrace_exchange_api_key,
                          self.settings.nettrace_exchange_api_secret, self.live_trading, base_url=self.ccxt_base_url,
                          api_budget=lambda ex: self.coordinator().api_call(ex), fee_rate=self.fee_rate)

    def _build_engine(self, broker: Broker) -> ExecutionEngine:
        return ExecutionEngine(
            ledger_of(self.settings), broker, self.rules(), CostModel(self.fee_rate, self.slippage_bps),
            Path(self.audit_dir), self.account, self.initial_capital_usd, self.min_order_usd)

    def engine(self) -> ExecutionEngine:
        """The engine with the real broker, built now: missing keys fail here, before any intent
        is written, not halfway through a tick."""
        if self._engine is None:
            self._engine = self._build_engine(self.broker())
        return self._engine

    def ledger_only_engine(self) -> ExecutionEngine:
        """The same account's engine without a venue (see `LedgerOnlyBroker`): for HARDSTOP,
        status and marks, which must work with only the ledger — no keys, no exchange."""
        if self._ledger_engine is None:
            self._ledger_engine = self._build_engine(
                LedgerOnlyBroker("ccxt" if self.live_trading else "paper", self.mode))
        return self._ledger_engine

    # --- what assets and jobs call ------------------------------------------------------------
    def submit(self, intent: Intent) -> Decision:
        """Approve (sized) and place, or reject with reasons."""
        return self.engine().submit(intent)

    def exit(self, strategy: str, symbol: str, price: float, key: str, qty: float | None = None) -> Decision:
        """Sell a strategy's position (all of it by default). Always allowed."""
        return self.engine().submit(Intent(strategy, symbol, "exit", price, key, qty=qty, account=self.account))

    def hardstop(self, on: bool, reason: str = "", reset_peak: bool = False, by: str = "dagster") -> HardstopResult:
        """Ledger only: an operator can stop trading with no keys and the exchange down."""
        return self.ledger_only_engine().set_hardstop(on, reason, by, reset_peak)

    def reconcile(self) -> ReconcileReport:
        return self.engine().reconcile()

    def mark(self, prices: dict[str, float]) -> MarkResult:
        return self.ledger_only_engine().mark(prices)

    def status(self) -> dict[str, Any]:
        return self.ledger_only_engine().status()
