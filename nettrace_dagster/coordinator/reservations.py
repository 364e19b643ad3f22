"""Capital reservations: by priority (exits > live > paper > backtests), never into the minimum
reserve, expiring by TTL. Every function runs inside the caller's write transaction, which holds
the account's lock, so concurrent processes and threads can never over-allocate.

Priority is enforced two ways: a request only counts reservations of its own or a higher
priority against itself, and it may *preempt* (revoke) lower-priority reservations, newest
first, to cover its shortfall. Reservations bound to an order in flight are never preempted.
While HARDSTOP is on, only exit reservations are granted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from nettrace_dagster.ledger.accounting import Refreshed
from nettrace_dagster.ledger.models import Reservation, live_reservation
from nettrace_dagster.rules import Rules

EPS = 1e-9
# Lower number = higher priority (exits > live > paper > backtests).
PRIORITIES: dict[str, int] = {"exit": 0, "live": 1, "paper": 2, "backtest": 3}


@dataclass(frozen=True)
class ReservationResult:
    granted: bool
    kind: str
    amount: float
    reasons: tuple[str, ...]
    reservation_id: int | None = None
    preempted: tuple[int, ...] = ()
    free: float = 0.0  # free capital for this priority before the grant


# Statements built once: constructing SQLAlchemy expressions costs more than running them, and the
# whole account is read in one round trip.
_HELD = (Reservation.account == bindparam("a")) & live_reservation(bindparam("now"))
_RESERVED = select(func.coalesce(func.sum(Reservation.amount), 0.0)).where(_HELD)
_VICTIMS = select(Reservation.id, Reservation.amount).where(
    _HELD, Reservation.priority > bindparam("p"), Reservation.client_order_id.is_(None)).order_by(
    Reservation.priority.desc(), Reservation.id.desc())
_PREEMPT = update(Reservation).where(Reservation.id == bindparam("rid")).values(status="preempted")
_INSERT = insert(Reservation).values(**{c: bindparam(c) for c in (
    "account", "owner", "kind", "priority", "amount", "status", "client_order_id", "created_at", "expires_at")})


def reserve_in(s: Session, rules: Rules, account: str, owner: str, kind: str, amount: float, now: float,
               ttl_s: float | None, client_order_id: str | None, refreshed: Refreshed) -> ReservationResult:
    """Grant, grant by preempting, or deny one reservation inside the caller's transaction (it
    commits and audits), judged on the snapshot it has just refreshed under the same lock."""
    if kind not in PRIORITIES:
        raise ValueError(f"unknown reservation kind {kind!r}; one of {', '.join(PRIORITIES)}")
    if not amount > 0 or amount != amount:
        return ReservationResult(False, kind, amount, (f"amount {amount!r} is not positive",))
    priority = PRIORITIES[kind]
    snap = refreshed.snapshot
    reserved_all = float(s.execute(_RESERVED, {"a": account, "now": now}).scalar_one())
    if snap.hardstop and kind != "exit":
        return ReservationResult(False, kind, amount, ("HARDSTOP is on: only exit reservations (Rule 1)",))
    free_for_me = rules.free_capital(snap)
    if amount > free_for_me + EPS:
        return ReservationResult(False, kind, amount, (
            f"needs ${amount:.2f}, free for {kind} ${free_for_me:.2f} "
            f"(reserve floor ${rules.reserve_floor(snap.equity):.2f} untouched)",), free=free_for_me)
    free_all = rules.free_capital(replace(snap, reserved=reserved_all))
    preempted: list[int] = []
    if amount > free_all + EPS:
        shortfall = amount - free_all
        for rid, held in s.execute(_VICTIMS, {"a": account, "now": now, "p": priority}).all():
            if shortfall <= EPS:
                break
            s.execute(_PREEMPT, {"rid": rid})
            preempted.append(int(rid))
            shortfall -= held
    res_id = s.connection().execute(_INSERT, {
        "account": account, "owner": owner, "kind": kind, "priority": priority, "amount": amount,
        "status": "active", "client_order_id": client_order_id, "created_at": now,
        "expires_at": None if ttl_s is None else now + ttl_s}).inserted_primary_key[0]
    why = f"granted ${amount:.2f} of ${free_for_me:.2f} free for {kind}"
    if preempted:
        why += f", preempting lower-priority reservation(s) {preempted}"
    return ReservationResult(True, kind, amount, (why,), res_id, tuple(preempted), free_for_me)


def close_reservation(s: Session, reservation_id: int, status: str = "released") -> Reservation | None:
    """Release (or mark consumed) an active reservation; None if it was not active."""
    res = s.get(Reservation, reservation_id)
    if res is None or res.status != "active":
        return None
    res.status = status
    return res


def shrink_reservation(s: Session, reservation_id: int | None, spent: float) -> None:
    """An order's fill spent part of what was held: that part is now cash gone, not held."""
    if reservation_id is None:
        return
    res = s.get(Reservation, reservation_id)
    if res is not None and res.status == "active":
        res.amount = max(res.amount - spent, 0.0)
