"""Reconciliation: make the ledger agree with the venue about every order not yet final.

Run at the start of every trading tick and whenever a process (re)starts. For each order in
"intent", "unknown", "open" or "partially_filled":
- the venue knows it (fetched by client order id) → book its fills and status;
- the venue does not, and it is an intent or unknown younger than the intent TTL → send it again
  under the *same* client order id (the venue refuses a second order with one id, so this can
  never duplicate) unless HARDSTOP came on meanwhile and it is an entry;
- the venue does not, and it is older than that → "expired": it never reached the venue, and a
  signal that old is stale; its capital is released;
- it is open at the venue for longer than the open-order TTL → cancelled there, and the result
  booked (a partial fill stays booked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from nettrace_dagster.execution.broker import BrokerError
from nettrace_dagster.execution.models import OPEN_STATES, Flag, Order

if TYPE_CHECKING:
    from nettrace_dagster.execution.engine import ExecutionEngine


@dataclass
class ReconcileReport:
    checked: int = 0
    booked: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def reconcile(engine: ExecutionEngine) -> ReconcileReport:
    report = ReconcileReport()
    with engine.ledger.read() as s:
        pending = list(s.scalars(select(Order).where(
            Order.account == engine.account, Order.broker == engine.broker.name,
            Order.status.in_(OPEN_STATES)).order_by(Order.id)))
        flag = s.get(Flag, "hardstop")
        hardstop = bool(flag and flag.on)
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
                engine._mark_unknown(coid, "acknowledged order not found at the venue")
                report.errors.append(f"{coid}: acknowledged but not found at the venue")
            elif age > engine.intent_ttl_s:
                engine._finalise(coid, "expired", f"not at the venue after {age:.0f}s: never sent; stale")
                report.expired.append(coid)
            elif hardstop and order.kind == "entry":
                engine._finalise(coid, "rejected", "HARDSTOP came on before the entry was sent (Rule 1)")
                report.rejected.append(coid)
            else:
                decision = engine.send(coid)
                report.resent.append(coid)
                if decision.status == "unknown":
                    report.errors.append(f"{coid}: still unknown after resending")
        except BrokerError as exc:  # the venue is unreachable: leave the order as it is, try next tick
            report.errors.append(f"{coid}: {type(exc).__name__}: {exc}")
    if report.checked:
        engine.audit.record("reconcile", account=engine.account, **{k: v for k, v in report.to_dict().items() if v})
    return report
