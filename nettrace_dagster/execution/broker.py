"""What the engine needs from a venue, and how a venue's answers are classified.

A broker never decides anything; it places an order under the engine's client order id and tells
what the venue knows about it. The exceptions are the whole contract of crash safety:
`BrokerRejected` means no order exists, `DuplicateOrder` means one already does (ask `fetch`), and
`BrokerUnknown` means nobody knows yet: the order stays "unknown" until reconciliation asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    symbol: str  # partition-key form, e.g. BTC-USDT
    side: str  # buy | sell
    qty: float
    price: float  # reference price (paper fills at it, with slippage; market orders ignore it)


@dataclass(frozen=True)
class BrokerOrder:
    """The venue's view of one order: cumulative amounts, so applying it twice changes nothing."""

    client_order_id: str
    status: str  # open | partially_filled | filled | canceled | expired | rejected
    filled_qty: float
    filled_quote: float  # Σ qty × price of the fills so far
    fee: float  # cumulative, valued in the quote currency (a fee paid in base included)
    exchange_order_id: str | None = None
    fee_base: float = 0.0  # the part of the fee paid in the base asset (buys on Binance without BNB)


class BrokerError(Exception):
    """Base of the broker's classified failures."""


class BrokerRejected(BrokerError):
    """The venue refused the order: it does not exist there."""


class DuplicateOrder(BrokerError):
    """The venue already has an order with this client order id."""


class BrokerUnknown(BrokerError):
    """The outcome is unknown (timeout, connection lost after sending)."""


class LiveTradingDisabled(BrokerError):
    """Real orders need NETTRACE_LIVE_TRADING=1 *and* API keys."""


class Broker(Protocol):
    name: str
    mode: str  # paper | live

    def place(self, request: OrderRequest) -> BrokerOrder:
        """Place a market order under `request.client_order_id` (raises the errors above)."""
        ...

    def fetch(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        """The venue's state of the order, or None when the venue has no such order."""
        ...

    def cancel(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        """Cancel what is left of an open order; the resulting state (None: no such order)."""
        ...
