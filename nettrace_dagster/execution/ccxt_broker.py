"""The real broker: market orders on any ccxt exchange, under the engine's client order id.

It refuses to exist unless live trading is switched on (NETTRACE_LIVE_TRADING=1) *and* keys are
set. Every request first takes a slot of the shared exchange API budget (the coordinator's).
Errors are classified so that nothing is ever placed twice:
- rate limits and an unavailable exchange (429/418, -1003, 503) are retried with backoff: safe,
  because the client order id makes a second copy impossible ("Duplicate order sent" → fetch);
- a timeout or a dropped connection while *placing* is not retried: the order is "unknown" until
  reconciliation fetches it by client order id; Binance's -1000 "unknown error" is treated the same;
- anything else the exchange says about the order is a rejection.
Keys go to ccxt only; no message here ever contains them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import ccxt

from nettrace_dagster.execution.broker import (
    BrokerOrder,
    BrokerRejected,
    BrokerUnknown,
    DuplicateOrder,
    LiveTradingDisabled,
    OrderRequest,
)
from nettrace_dagster.market.ccxt_source import call_with_retries, make_exchange, to_ccxt_symbol

T = TypeVar("T")
RETRYABLE = (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)
UNKNOWN_OUTCOME = (ccxt.RequestTimeout, ccxt.NetworkError, ccxt.OperationFailed)
_STATUS = {"closed": "filled", "canceled": "canceled", "expired": "expired", "rejected": "rejected"}


class CcxtBroker:
    name = "ccxt"
    mode = "live"

    def __init__(self, exchange_id: str, api_key: str, secret: str, live_trading: bool, base_url: str | None = None,
                 api_budget: Callable[[str], Any] | None = None, max_retries: int = 4, timeout_ms: int = 10_000,
                 fee_rate: float = 0.001, sleep: Callable[[float], None] = time.sleep) -> None:
        if not live_trading:
            raise LiveTradingDisabled("real orders need NETTRACE_LIVE_TRADING=1 (paper trading is the default)")
        if not (api_key and secret):
            raise LiveTradingDisabled("real orders need NETTRACE_EXCHANGE_API_KEY and NETTRACE_EXCHANGE_API_SECRET")
        self.exchange_id = exchange_id
        self.exchange = make_exchange(exchange_id, base_url=base_url, api_key=api_key, secret=secret,
                                      timeout_ms=timeout_ms)
        self.api_budget, self.max_retries, self.fee_rate, self.sleep = api_budget, max_retries, fee_rate, sleep

    # --- the protocol -------------------------------------------------------------------------
    def place(self, request: OrderRequest) -> BrokerOrder:
        symbol = to_ccxt_symbol(request.symbol)
        self._call(self.exchange.load_markets)
        try:
            amount = float(self.exchange.amount_to_precision(symbol, request.qty))
        except ccxt.InvalidOrder:  # ccxt 4.5 raises, rather than answer 0, below one lot step
            amount = 0.0
        if amount <= 0:
            raise BrokerRejected(f"{request.qty} {symbol} rounds to nothing at the exchange's lot size")
        try:
            order = self._call(lambda: self.exchange.create_order(
                symbol, "market", request.side, amount, None, {"clientOrderId": request.client_order_id}),
                placing=True)
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest, ccxt.PermissionDenied) as exc:
            if "duplicate" in str(exc).lower():
                raise DuplicateOrder(request.client_order_id) from None
            raise BrokerRejected(_short(exc)) from None
        return self._state(order, request.client_order_id, symbol)

    def fetch(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        try:
            order = self._call(lambda: self.exchange.fetch_order(
                None, to_ccxt_symbol(symbol), {"clientOrderId": client_order_id}))
        except ccxt.OrderNotFound:
            return None
        return self._state(order, client_order_id, to_ccxt_symbol(symbol))

    def cancel(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        try:
            self._call(lambda: self.exchange.cancel_order(None, to_ccxt_symbol(symbol), {"clientOrderId": client_order_id}))
        except ccxt.OrderNotFound:
            pass  # already final (filled or expired): fetch tells which
        return self.fetch(client_order_id, symbol)

    def balances(self) -> dict[str, float]:
        """Every asset's total (free + locked in orders) at the exchange: what reconciliation
        compares the ledger with, and the most an exit may sell."""
        balance = self._call(self.exchange.fetch_balance)
        return {asset: float(total or 0.0) for asset, total in (balance.get("total") or {}).items()}

    def open_order_ids(self) -> list[str]:
        """Client order ids of every open order on the account (all symbols)."""
        self.exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False  # we want them all, knowingly
        orders = self._call(lambda: self.exchange.fetch_open_orders())
        return [str(o.get("clientOrderId") or o.get("id")) for o in orders]

    def dust_qty(self, symbol: str) -> float:
        """Below this a remainder cannot be sold (lot size): the engine writes it off."""
        market = self.exchange.markets.get(to_ccxt_symbol(symbol)) if self.exchange.markets else None
        if not market:
            return 0.0
        return float(market.get("limits", {}).get("amount", {}).get("min") or 0.0)

    # --- internals ----------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], placing: bool = False) -> T:
        """Throttling and an unavailable exchange are retried (the request was not processed);
        a timeout or a dropped connection is retried only for reads, never for a placement."""
        budget = (lambda: self.api_budget(self.exchange_id)) if self.api_budget is not None else None
        try:
            return call_with_retries(fn, tries=self.max_retries + 1,
                                     retry_on=RETRYABLE if placing else RETRYABLE + UNKNOWN_OUTCOME,
                                     budget=budget, delay=lambda a: min(0.25 * 2 ** (a - 1), 8.0), sleep=self.sleep)
        except RETRYABLE + UNKNOWN_OUTCOME as exc:
            raise BrokerUnknown(_short(exc)) from None

    def _state(self, order: dict[str, Any], coid: str, symbol: str) -> BrokerOrder:
        filled = float(order.get("filled") or 0.0)
        quote = float(order.get("cost") or 0.0) or filled * float(order.get("average") or order.get("price") or 0.0)
        status = _STATUS.get(order.get("status") or "open", "open")
        if status == "open" and filled > 0:
            status = "partially_filled"
        fee_quote, fee_base = self._fees(order, symbol, filled, quote)
        price = quote / filled if filled > 0 else 0.0
        return BrokerOrder(coid, status, filled, quote, fee_quote + fee_base * price,
                           str(order.get("id")) if order.get("id") is not None else None, fee_base=fee_base)

    def _fees(self, order: dict[str, Any], symbol: str, filled: float, quote: float) -> tuple[float, float]:
        """(fee in quote, fee in base). Replies without fees (GET order) are completed from the
        order's trades; a fee in a third currency (e.g. BNB) is estimated at the fee rate."""
        fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
        if filled > 0 and not any(f and f.get("cost") is not None for f in fees) and order.get("id") is not None:
            trades = self._call(lambda: self.exchange.fetch_my_trades(symbol, params={"orderId": order["id"]}))
            fees = [t["fee"] for t in trades if t.get("fee")]
        base, quote_ccy = symbol.split("/")
        in_quote = sum(float(f.get("cost") or 0) for f in fees if f and f.get("currency") == quote_ccy)
        in_base = sum(float(f.get("cost") or 0) for f in fees if f and f.get("currency") == base)
        if filled > 0 and not any(f and f.get("currency") in (base, quote_ccy) for f in fees):
            in_quote = quote * self.fee_rate
        return in_quote, in_base


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
