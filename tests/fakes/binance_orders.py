"""Account half of the fake Binance: balances, orders, fills and trades, in Binance's JSON shapes.

The matching is deliberately simple: a MARKET order (or a marketable LIMIT order) fills at once at
the series price, a resting LIMIT order waits until the test calls `fill_order`. Partial fills are
scripted with `fill_ratios`: the next order fills only that share of its quantity.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.fakes.binance_market import ApiError, SymbolSpec, round_to_tick

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


def _d8(value: Decimal) -> str:
    return f"{value:.8f}"


def _floor_to(value: Decimal, step: str) -> Decimal:
    unit = Decimal(step)
    return (value / unit).to_integral_value(ROUND_DOWN) * unit


def _param_decimal(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return Decimal(raw)
    except ArithmeticError:
        legal = r"'^([0-9]{1,20})(\.[0-9]{1,20})?$'"
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {legal}.") from None


def _mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@dataclass
class Order:
    """One order as the fake's matching engine holds it."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    time: int
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_time: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def to_json(self) -> dict[str, Any]:
        """The order as `GET /api/v3/order` returns it."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id, "price": _d8(self.price), "origQty": _d8(self.orig_qty),
            "executedQty": _d8(self.executed_qty), "cummulativeQuoteQty": _d8(self.cum_quote),
            "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time,
            "updateTime": self.update_time or self.time, "isWorking": True, "workingTime": self.time,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
        }


class Account:
    """Balances, orders and trades of the one account the fake serves."""

    def __init__(self, balances: dict[str, str | float], commission_rate: str = "0.001") -> None:
        self.free: dict[str, Decimal] = {a: Decimal(str(v)) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = {a: Decimal(0) for a in balances}
        self.commission_rate = Decimal(commission_rate)
        self.orders: list[Order] = []
        self.trades: list[dict[str, Any]] = []
        # Share of the quantity each next order fills at once (1.0 when the queue is empty).
        self.fill_ratios: deque[float] = deque()

    # -- lookups -------------------------------------------------------------------------------
    def find(self, params: dict[str, str], unknown: ApiError) -> Order:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        if "orderId" in params:
            match = [o for o in self.orders if o.symbol == symbol and str(o.order_id) == params["orderId"]]
        elif "origClientOrderId" in params:
            match = [o for o in self.orders if o.symbol == symbol and o.client_order_id == params["origClientOrderId"]]
        else:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if not match:
            raise unknown
        return match[0]

    def get_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self.find(params, ApiError(400, -2013, "Order does not exist.")).to_json()

    def open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        return [o.to_json() for o in self.orders if o.status in OPEN_STATUSES and symbol in (None, o.symbol)]

    def all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        rows = [o for o in self.orders if o.symbol == self._symbol(params)]
        if "orderId" in params:
            rows = [o for o in rows if o.order_id >= int(params["orderId"])]
        rows = [o for o in rows if int(params.get("startTime", 0)) <= o.time <= int(params.get("endTime", 2**62))]
        return [o.to_json() for o in rows][: int(params.get("limit", 500))]

    def my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        rows = [t for t in self.trades if t["symbol"] == self._symbol(params)]
        if "orderId" in params:
            rows = [t for t in rows if str(t["orderId"]) == params["orderId"]]
        if "fromId" in params:
            rows = [t for t in rows if t["id"] >= int(params["fromId"])]
        rows = [t for t in rows if int(params.get("startTime", 0)) <= t["time"] <= int(params.get("endTime", 2**62))]
        return rows[: int(params.get("limit", 500))]

    def account_json(self, now_ms: int) -> dict[str, Any]:
        balances = [{"asset": a, "free": _d8(self.free[a]), "locked": _d8(self.locked.get(a, Decimal(0)))}
                    for a in sorted(self.free)]
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": _d8(self.commission_rate), "taker": _d8(self.commission_rate),
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 354937868,
        }

    @staticmethod
    def _symbol(params: dict[str, str]) -> str:
        if not params.get("symbol"):
            raise _mandatory("symbol")
        return params["symbol"]

    # -- order flow ----------------------------------------------------------------------------
    def place(self, spec: SymbolSpec, params: dict[str, str], market_price: float, now_ms: int) -> dict[str, Any]:
        """`POST /api/v3/order` for MARKET and LIMIT orders; returns the ACK/RESULT/FULL reply."""
        side, otype = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if otype not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"fake{len(self.orders) + 1:06d}"
        if any(o.client_order_id == client_id for o in self.orders):
            raise ApiError(400, -2010, "Duplicate order sent.")
        px_now = Decimal(round_to_tick(market_price, spec.tick_size))
        qty, tif = _param_decimal(params, "quantity"), params.get("timeInForce", "")
        if otype == "LIMIT":
            price = _param_decimal(params, "price")
            if price is None:
                raise _mandatory("price")
            if qty is None:
                raise _mandatory("quantity")
            if tif not in ("GTC", "IOC", "FOK"):
                raise _mandatory("timeInForce")
            if price % Decimal(spec.tick_size):
                raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        else:
            price, tif = Decimal(0), "GTC"
            quote_qty = _param_decimal(params, "quoteOrderQty")
            if qty is None and quote_qty is None:
                raise ApiError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if qty is None:
                qty = _floor_to(quote_qty / px_now, spec.step_size)
        if qty < Decimal(spec.min_qty) or qty % Decimal(spec.step_size):
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        ref_price = price if otype == "LIMIT" else px_now
        if qty * ref_price < Decimal(spec.min_notional):
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        need_asset, need = (spec.quote, qty * ref_price) if side == "BUY" else (spec.base, qty)
        if self.free.get(need_asset, Decimal(0)) < need:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")

        order = Order(spec.symbol, len(self.orders) + 1, client_id, side, otype, tif, price, qty, now_ms)
        self.orders.append(order)
        marketable = otype == "MARKET" or (side == "BUY" and price >= px_now) or (side == "SELL" and price <= px_now)
        if marketable:
            ratio = Decimal(str(self.fill_ratios.popleft())) if self.fill_ratios else Decimal(1)
            fill = _floor_to(qty * ratio, spec.step_size)
            if tif == "FOK" and fill < qty:
                fill = Decimal(0)
            if fill > 0:
                self._fill(spec, order, fill, px_now, now_ms, maker=False)
        if order.remaining > 0:
            if otype == "MARKET" or tif in ("IOC", "FOK"):
                order.status = "EXPIRED"  # Binance expires what a taker order could not fill
            else:
                self._lock(spec, order, +1)
        return self._reply(order, params.get("newOrderRespType", "FULL"), now_ms)

    def cancel(self, spec: SymbolSpec, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        """`DELETE /api/v3/order`: cancel an open order; anything else is "Unknown order sent."."""
        unknown = ApiError(400, -2011, "Unknown order sent.")
        order = self.find(params, unknown)
        if order.status not in OPEN_STATUSES:
            raise unknown
        self._lock(spec, order, -1)
        order.status, order.update_time = "CANCELED", now_ms
        reply = self._reply(order, "RESULT", now_ms)
        reply["origClientOrderId"] = order.client_order_id
        reply["clientOrderId"] = params.get("newClientOrderId", f"cancel{order.order_id}")
        return reply

    def fill_resting(self, spec: SymbolSpec, order: Order, qty: Decimal | None, now_ms: int) -> None:
        """Fill (part of) an open LIMIT order at its limit price, as a maker."""
        if order.status not in OPEN_STATUSES:
            raise ValueError(f"order {order.order_id} is {order.status}, not open")
        qty = order.remaining if qty is None else min(qty, order.remaining)
        self._lock(spec, order, -1)
        self._fill(spec, order, qty, order.price, now_ms, maker=True)
        if order.remaining > 0:
            self._lock(spec, order, +1)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _lock(self, spec: SymbolSpec, order: Order, sign: int) -> None:
        asset, amount = (spec.quote, order.remaining * order.price) if order.side == "BUY" else (spec.base, order.remaining)
        self.free[asset] = self.free.get(asset, Decimal(0)) - sign * amount
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + sign * amount

    def _fill(self, spec: SymbolSpec, order: Order, qty: Decimal, price: Decimal, now_ms: int, maker: bool) -> None:
        quote = qty * price
        for asset in (spec.base, spec.quote):
            self.free.setdefault(asset, Decimal(0))
            self.locked.setdefault(asset, Decimal(0))
        # Commission is charged in the asset received, as Binance does without BNB.
        if order.side == "BUY":
            commission, commission_asset = qty * self.commission_rate, spec.base
            self.free[spec.quote] -= quote
            self.free[spec.base] += qty - commission
        else:
            commission, commission_asset = quote * self.commission_rate, spec.quote
            self.free[spec.base] -= qty
            self.free[spec.quote] += quote - commission
        order.executed_qty += qty
        order.cum_quote += quote
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_time = now_ms
        trade_id = len(self.trades) + 1
        order.fills.append({"price": _d8(price), "qty": _d8(qty), "commission": _d8(commission),
                            "commissionAsset": commission_asset, "tradeId": trade_id})
        self.trades.append({
            "symbol": order.symbol, "id": trade_id, "orderId": order.order_id, "orderListId": -1,
            "price": _d8(price), "qty": _d8(qty), "quoteQty": _d8(quote), "commission": _d8(commission),
            "commissionAsset": commission_asset, "time": now_ms, "isBuyer": order.side == "BUY",
            "isMaker": maker, "isBestMatch": True,
        })

    @staticmethod
    def _reply(order: Order, resp_type: str, now_ms: int) -> dict[str, Any]:
        ack = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
               "clientOrderId": order.client_order_id, "transactTime": now_ms}
        if resp_type == "ACK":
            return ack
        full = order.to_json()
        result = {**ack, **{k: full[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty",
                                                 "status", "timeInForce", "type", "side", "workingTime",
                                                 "selfTradePreventionMode")}}
        if resp_type == "FULL":
            result["fills"] = list(order.fills)
        return result
