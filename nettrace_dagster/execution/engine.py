"""The execution engine: the one door every order goes through, in paper and live alike.

The order flow is crash-safe by construction:
1. In one ledger transaction: mark the account, latch HARDSTOP if a Rule 1 trigger holds, decide
   (`decide.decide`), hold the entry's capital (a reservation bound to the order) and write the
   order as "intent" under a deterministic client order id. A second submit of the same intent
   finds that row and sends nothing.
2. Outside any transaction: send to the broker under that client order id.
3. In another transaction: book what the broker answered (fills are cumulative and keyed, so
   booking twice changes nothing). A timeout leaves the order "unknown".
A crash anywhere leaves an order in "intent" or "unknown"; `reconcile` (run at the start of every
tick and on restart) asks the broker by client order id and books, resends or expires it; an
expired exit leaves its position to be sold again (`exits_to_rederive`), never silently held.
Every decision is the risk gate's (`risk.RiskGate`); the engine only adds the broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nettrace_dagster.coordinator.reservations import (
    PRIORITIES,
    close_reservation,
    reserve_in,
    shrink_reservation,
)
from nettrace_dagster.execution.broker import (
    Broker,
    BrokerError,
    BrokerOrder,
    BrokerRejected,
    DuplicateOrder,
    OrderRequest,
)
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.execution.reconcile import ReconcileReport, reconcile
from nettrace_dagster.execution.risk import Event, HardstopResult, MarkResult, RiskGate
from nettrace_dagster.ledger import accounting as acc
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import FINAL_STATES, Order, Position
from nettrace_dagster.rules import Rules

SENDABLE = ("intent", "unknown")  # states in which an order may (again) go to the venue
REDERIVE = ("expired", "canceled")  # an exit that ended like this leaves its position to sell again


class ExecutionEngine:
    """The risk gate + ledger + broker for one account."""

    def __init__(self, ledger: Ledger, broker: Broker, rules: Rules | None = None, costs: CostModel | None = None,
                 audit_dir: Path | str | None = None, account: str = "main", initial_capital: float = 100.0,
                 min_order_usd: float = 5.0, intent_ttl_s: float = 600.0, open_order_ttl_s: float = 120.0,
                 clock: Callable[[], float] = time.time, hardstop_scope: str = "global") -> None:
        self.ledger, self.broker = ledger, broker
        self.gate = RiskGate(ledger, rules, account, audit_dir, initial_capital, broker.mode, clock, hardstop_scope)
        self.costs = costs or CostModel()
        self.min_order_usd = min_order_usd
        self.intent_ttl_s, self.open_order_ttl_s, self.clock = intent_ttl_s, open_order_ttl_s, clock
        # Live orders outrank paper ones for capital (the coordinator's priority ladder).
        self.reservation_kind = "live" if broker.mode == "live" else "paper"
        # Live only: the exchange's balances at the last reconciliation (exits never sell more).
        self.venue_holdings: dict[str, float] | None = None

    @property
    def rules(self) -> Rules:
        return self.gate.rules

    @property
    def account(self) -> str:
        return self.gate.account

    # --- submitting ---------------------------------------------------------------------------
    def submit(self, intent: Intent, marks: dict[str, float] | None = None) -> Decision:
        """Decide, write the intent, send, book. Idempotent per `intent.client_order_id`.
        `marks` are the current prices of every symbol (entries need one for each held symbol)."""
        coid = intent.client_order_id
        try:
            with self.gate.tx() as (s, events):
                existing = s.scalars(select(Order).where(Order.client_order_id == coid)).one_or_none()
                if existing is not None:
                    return self._decision_of(existing, duplicate=True)
                decision = self._decide_and_write(s, intent, marks, events)
        except IntegrityError:  # another process wrote the same intent first (PostgreSQL)
            with self.ledger.read() as s:
                return self._decision_of(s.scalars(select(Order).where(Order.client_order_id == coid)).one(),
                                         duplicate=True)
        if not decision.approved or decision.qty <= 0:
            return decision
        return self.send(coid)

    def _decide_and_write(self, s: Session, intent: Intent, marks: dict[str, float] | None,
                          events: list[Event]) -> Decision:
        now = self.clock()
        live = self.broker.mode == "live"
        d, r = self.gate.decide(s, intent, self.costs, self.min_order_usd, marks, PRIORITIES[self.reservation_kind],
                                self.venue_holdings if live else None, events)
        reservation_id = None
        if d.approved and intent.kind == "entry":
            held = reserve_in(s, self.rules, self.account, f"order:{d.client_order_id}", self.reservation_kind,
                              d.notional * (1.0 + self.costs.fee_rate), now, None, d.client_order_id, r)
            events.append(("reservation", {"granted": held.granted, "kind": held.kind, "amount": held.amount,
                                           "reasons": held.reasons, "preempted": held.preempted,
                                           "client_order_id": d.client_order_id}))
            if not held.granted:
                d = Decision(False, "entry", held.reasons, client_order_id=d.client_order_id)
            reservation_id = held.reservation_id
        if d.approved and d.qty <= 0:
            return replace(d, status="none")  # an exit with nothing to sell: no order
        status = "intent" if d.approved else "rejected"
        s.add(Order(client_order_id=d.client_order_id, account=self.account, strategy=intent.strategy,
                    symbol=intent.symbol, side=intent.side, kind=intent.kind, mode=self.broker.mode,
                    broker=self.broker.name, qty=d.qty, price_ref=intent.price, notional=d.notional, status=status,
                    reasons=json.dumps(list(d.reasons)), reservation_id=reservation_id, created_at=now,
                    updated_at=now, bar_ms=intent.bar_ms))
        return replace(d, status=status)

    # --- talking to the broker ----------------------------------------------------------------
    def send(self, coid: str) -> Decision:
        """Send a written intent (again) under its client order id, and book the answer. An order
        that is already final (expired, rejected…) or at the venue is never placed again, and an
        unsent entry is refused once HARDSTOP is on."""
        with self.ledger.read() as s:
            order = s.scalars(select(Order).where(Order.client_order_id == coid)).one()
            hardstop = acc.hardstop_on(s, self.account)
        if order.status not in SENDABLE:
            return self._decision_of(order)
        request = OrderRequest(coid, order.symbol, order.side, order.qty, order.price_ref)
        try:
            if hardstop and order.kind == "entry":  # it may have reached the venue before a crash: ask
                state = self.broker.fetch(coid, order.symbol)
                if state is None:
                    return self._decision_of(self.finalise(
                        coid, "rejected", "HARDSTOP came on before the entry was sent (Rule 1)"))
            else:
                try:
                    state = self.broker.place(request)
                except DuplicateOrder:  # it reached the venue before (a resend after a crash or timeout)
                    state = self.broker.fetch(coid, order.symbol)
        except BrokerRejected as exc:
            return self._decision_of(self.finalise(coid, "rejected", f"broker rejected: {exc}"))
        except BrokerError as exc:
            return self._decision_of(self.mark_unknown(coid, f"{type(exc).__name__}: {exc}"))
        except BaseException:
            self.mark_unknown(coid, "unexpected error while sending")
            raise
        if state is None:
            return self._decision_of(self.mark_unknown(coid, "venue reported a duplicate but has no such order"))
        return self._decision_of(self.apply(state))

    def apply(self, state: BrokerOrder) -> Order:
        """Book the venue's view of an order: new fills, status, reservation (idempotent)."""
        with self.ledger.tx() as s:
            now = self.clock()
            cap = acc.lock_account(s, self.account)
            order = s.scalars(select(Order).where(Order.client_order_id == state.client_order_id)
                              .with_for_update()).one()
            d_qty = state.filled_qty - order.filled_qty
            if d_qty > 1e-15:
                d_quote = state.filled_quote - order.filled_quote
                d_fee = max(state.fee - order.fee, 0.0)
                d_fee_base = max(state.fee_base - order.fee_base, 0.0)
                dust = getattr(self.broker, "dust_qty", None)
                acc.apply_fill(s, self.rules, cap, order, d_qty, d_quote, d_fee,
                               f"{order.client_order_id}:{state.filled_qty:.12g}", now, d_fee_base,
                               dust(order.symbol) if dust else 0.0)
                order.filled_qty, order.filled_quote = state.filled_qty, state.filled_quote
                order.fee, order.fee_base = state.fee, state.fee_base
                if order.side == "buy":
                    shrink_reservation(s, order.reservation_id, d_quote + d_fee)
            order.status = state.status
            order.exchange_order_id = state.exchange_order_id or order.exchange_order_id
            order.attempts += 1
            order.updated_at = now
            if order.status in FINAL_STATES and order.reservation_id is not None:
                close_reservation(s, order.reservation_id, "consumed" if order.filled_qty > 0 else "released")
            return order

    def mark_unknown(self, coid: str, why: str) -> Order:
        """The venue's answer is not known: reconciliation asks again next tick."""
        with self.ledger.tx() as s:
            order = s.scalars(select(Order).where(Order.client_order_id == coid).with_for_update()).one()
            if order.status == "intent":
                order.status = "unknown"
            order.reasons = json.dumps([*json.loads(order.reasons), why])
            order.attempts += 1
            order.updated_at = self.clock()
            return order

    def finalise(self, coid: str, status: str, why: str) -> Order:
        """End an order that is not final yet (its capital is released), with the reason."""
        with self.ledger.tx() as s:
            order = s.scalars(select(Order).where(Order.client_order_id == coid).with_for_update()).one()
            if order.status not in FINAL_STATES:
                order.status = status
                if order.reservation_id is not None:
                    close_reservation(s, order.reservation_id,
                                      "consumed" if order.filled_qty > 0 else "released")
            order.reasons = json.dumps([*json.loads(order.reasons), why])
            order.updated_at = self.clock()
            return order

    # --- the account ---------------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        """Make the ledger agree with the venue about every order not yet final and, on a live
        account, about the balances and open orders themselves."""
        return reconcile(self)

    def exits_to_rederive(self) -> list[tuple[str, str, str]]:
        """(strategy, symbol, client order id) of held positions whose last order was an exit that
        expired or was cancelled: the position still has to be sold (the trader sends a new exit)."""
        with self.ledger.read() as s:
            last = select(Order.strategy, Order.symbol, Order.id).where(Order.account == self.account) \
                .order_by(Order.id.desc())
            latest: dict[tuple[str, str], int] = {}
            for strategy, symbol, oid in s.execute(last):
                latest.setdefault((strategy, symbol), oid)
            rows = s.execute(select(Order.strategy, Order.symbol, Order.client_order_id).join(
                Position, and_(Position.account == Order.account, Position.strategy == Order.strategy,
                               Position.symbol == Order.symbol)).where(
                Order.id.in_(list(latest.values()) or [-1]), Order.kind == "exit", Order.status.in_(REDERIVE),
                Position.qty > 0)).all()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def mark(self, prices: dict[str, float]) -> MarkResult:
        """Revalue at `prices`, latch HARDSTOP if due, record an equity mark, judge strategies."""
        return self.gate.mark(prices)

    def set_hardstop(self, on: bool, reason: str = "", by: str = "operator",
                     reset_peak: bool = False) -> HardstopResult:
        return self.gate.set_hardstop(on, reason, by, reset_peak)

    def status(self) -> dict[str, Any]:
        return {**self.gate.status(), "broker": self.broker.name, "mode": self.broker.mode}

    # --- helpers ------------------------------------------------------------------------------
    def _decision_of(self, order: Order, duplicate: bool = False) -> Decision:
        reasons = tuple(json.loads(order.reasons))
        return Decision(order.status != "rejected", order.kind, reasons, qty=order.qty, notional=order.notional,
                        client_order_id=order.client_order_id, status=order.status, duplicate=duplicate,
                        filled_qty=order.filled_qty, avg_price=order.avg_price, fee=order.fee)
