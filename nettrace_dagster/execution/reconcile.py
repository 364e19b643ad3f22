"""Reconciliation: make the ledger agree with the venue about every order not yet final and, on a
live account, about the balances and open orders themselves.

Run at the start of every trading tick and whenever a process (re)starts. For each order in
"intent", "unknown", "open" or "partially_filled":
- the venue knows it (fetched by client order id) → book its fills and status;
- the venue does not, and it is an intent or unknown younger than the intent TTL → send it again
  under the *same* client order id (the venue refuses a second order with one id, so this can
  never duplicate) unless HARDSTOP came on meanwhile and it is an entry;
- the venue does not, and it is older than that → "expired": it never reached the venue, and a
  signal that old is stale; its capital is released. An expired *exit* leaves its position held,
  and the trader sends a fresh exit for it at the current price (`exits_to_rederive`);
- it is open at the venue for longer than the open-order TTL → cancelled there, and the result
  booked (a partial fill stays booked; an exit's remainder is sold again the same way).
A live account is then compared with the exchange: the ledger may never hold more of an asset, or
more cash, than the exchange does, and the exchange may hold no open order the ledger does not
know. A mismatch raises the account's venue flag: entries stop and a P1 record is audited, until a
later reconciliation finds them in agreement again. Exits never sell more than the exchange holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from nettrace_dagster.execution.broker import BrokerError
from nettrace_dagster.execution.risk import base_asset, quote_asset
from nettrace_dagster.ledger.accounting import hardstop_on
from nettrace_dagster.ledger.models import OPEN_STATES, Capital, Order, Position

if TYPE_CHECKING:
    from nettrace_dagster.execution.engine import ExecutionEngine

QTY_TOLERANCE = 1e-9  # relative: float noise between the ledger's sums and the exchange's decimals
CASH_TOLERANCE_USD = 0.01


@dataclass
class ReconcileReport:
    checked: int = 0
    booked: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    venue_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def reconcile(engine: ExecutionEngine) -> ReconcileReport:
    report = ReconcileReport()
    with engine.ledger.read() as s:
        pending = list(s.scalars(select(Order).where(
            Order.account == engine.account, Order.broker == engine.broker.name,
            Order.status.in_(OPEN_STATES)).order_by(Order.id)))
        hardstop = hardstop_on(s)
    for order in pending:
        report.checked += 1
        coid = order.client_order_id
        try:
            state = engine.broker.fetch(coid, order.symbol)
            age = engine.clock() - order.created_at
            if state is not None:
                if state.status in ("open", "partially_filled") and age > engine.open_order_ttl_s:
                    state = engine.broker.cancel(coid, order.symbol) or state
                    report.cancelled.append(coid)
                engine.apply(state)
                report.booked.append(coid)
            elif order.status not in ("intent", "unknown"):
                # The venue lost an order it had acknowledged: never guess, flag it for a human.
                engine.mark_unknown(coid, "acknowledged order not found at the venue")
                report.errors.append(f"{coid}: acknowledged but not found at the venue")
            elif age > engine.intent_ttl_s:
                why = f"not at the venue after {age:.0f}s: never sent; stale"
                if order.kind == "exit":
                    why += "; the position's exit is sent again at the current price"
                engine.finalise(coid, "expired", why)
                report.expired.append(coid)
            elif hardstop and order.kind == "entry":
                engine.finalise(coid, "rejected", "HARDSTOP came on before the entry was sent (Rule 1)")
                report.rejected.append(coid)
            else:
                decision = engine.send(coid)
                report.resent.append(coid)
                if decision.status == "unknown":
                    report.errors.append(f"{coid}: still unknown after resending")
        except BrokerError as exc:  # the venue is unreachable: leave the order as it is, try next tick
            report.errors.append(f"{coid}: {type(exc).__name__}: {exc}")
    report.venue_problems = reconcile_venue(engine)
    if report.checked or report.venue_problems:
        engine.gate.audit("reconcile", **{k: v for k, v in report.to_dict().items() if v})
    return report


def reconcile_venue(engine: ExecutionEngine) -> list[str]:
    """Compare a live account with the exchange's balances and open orders; raise or clear the
    account's venue flag. Paper accounts (the venue is the ledger's own book) have nothing to do."""
    broker = engine.broker
    if broker.mode != "live" or not hasattr(broker, "balances"):
        return []
    problems: list[str] = []
    try:
        held: dict[str, float] = broker.balances()  # type: ignore[attr-defined]
        foreign_open = set(broker.open_order_ids())  # type: ignore[attr-defined]
    except BrokerError as exc:
        held, foreign_open = {}, set()
        problems.append(f"the exchange could not be asked for balances and open orders: {exc}")
    with engine.ledger.read() as s:
        cap = s.get(Capital, engine.account)
        positions = list(s.scalars(select(Position).where(Position.account == engine.account, Position.qty > 0)))
        known = set(s.scalars(select(Order.client_order_id).where(Order.account == engine.account)))
    if not problems:
        engine.venue_holdings = held
        wanted: dict[str, float] = {}
        for p in positions:
            wanted[base_asset(p.symbol)] = wanted.get(base_asset(p.symbol), 0.0) + p.qty
        for asset, qty in sorted(wanted.items()):
            have = held.get(asset, 0.0)
            if have < qty * (1 - QTY_TOLERANCE) - 1e-12:
                problems.append(f"the ledger holds {qty:.8g} {asset}, the exchange {have:.8g}")
        quote = quote_asset(positions[0].symbol) if positions else "USDT"
        if cap is not None and held.get(quote, 0.0) + CASH_TOLERANCE_USD < cap.cash:
            problems.append(f"the ledger has {cap.cash:.2f} {quote} in cash, the exchange {held.get(quote, 0.0):.2f}")
        strangers = sorted(foreign_open - known)
        if strangers:
            problems.append(f"{len(strangers)} open order(s) at the exchange the ledger does not know: "
                            + ", ".join(strangers[:5]))
    engine.gate.set_venue_mismatch(problems)
    return problems
