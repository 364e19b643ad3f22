"""The paper broker: a simulated venue that fills market orders at once, at the simulator's or the
live market's latest price, with the engine's fee and slippage model (`CostModel`).

It keeps its own order book (`paper_orders`) in the ledger database but in its *own*
transactions, exactly as an exchange is a separate system: a crash between "the venue filled it"
and "the ledger booked it" is then a real case that reconciliation must (and does) repair, and it
refuses a second order under one client order id like Binance does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nettrace_dagster.execution.broker import BrokerOrder, BrokerRejected, DuplicateOrder, OrderRequest
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import PaperOrder

PriceSource = Callable[[str], float | None]


class PaperBroker:
    """Market orders only; `price_source(symbol)` (e.g. a live ticker) overrides the request's
    reference price when it answers."""

    name = "paper"
    mode = "paper"

    def __init__(self, ledger: Ledger, costs: CostModel | None = None, price_source: PriceSource | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger, self.costs, self.price_source, self.clock = ledger, costs or CostModel(), price_source, clock

    def place(self, request: OrderRequest) -> BrokerOrder:
        if not request.qty > 0:
            raise BrokerRejected(f"quantity {request.qty!r} must be positive")
        price = (self.price_source(request.symbol) if self.price_source else None) or request.price
        if not price > 0:
            raise BrokerRejected(f"no price for {request.symbol}")
        fill = self.costs.fill_price(request.side, price)
        quote = request.qty * fill
        try:
            with self.ledger.tx() as s:
                if s.get(PaperOrder, request.client_order_id) is not None:
                    raise DuplicateOrder(f"duplicate client order id {request.client_order_id}")
                row = PaperOrder(client_order_id=request.client_order_id,
                                 exchange_order_id=f"paper-{request.client_order_id[2:14]}", symbol=request.symbol,
                                 side=request.side, qty=request.qty, filled_qty=request.qty, avg_price=fill,
                                 fee=self.costs.fee(quote), status="filled", ts=self.clock())
                s.add(row)
        except IntegrityError:  # two processes raced with one id (PostgreSQL): the venue has it
            raise DuplicateOrder(f"duplicate client order id {request.client_order_id}") from None
        return _state(row)

    def fetch(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        with self.ledger.read() as s:
            row = s.scalars(select(PaperOrder).where(PaperOrder.client_order_id == client_order_id)).one_or_none()
            return _state(row) if row is not None else None

    def cancel(self, client_order_id: str, symbol: str) -> BrokerOrder | None:
        return self.fetch(client_order_id, symbol)  # paper orders fill at once: nothing is left to cancel


def _state(row: PaperOrder) -> BrokerOrder:
    return BrokerOrder(row.client_order_id, row.status, row.filled_qty, row.filled_qty * row.avg_price, row.fee,
                       row.exchange_order_id)
