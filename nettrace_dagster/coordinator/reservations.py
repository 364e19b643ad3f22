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

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from nettrace_dagster.coordinator.models import PRIORITIES, Reservation, live_reservation
from nettrace_dagster.coordinator.sql import CoreSql, Sql
from nettrace_dagster.execution.accounting import HARDSTOP, Refreshed
from nettrace_dagster.execution.models import Capital, Flag, Position
from nettrace_dagster.rules import AccountSnapshot, Rules

EPS = 1e-9


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
_BLOCKING = or_(Reservation.priority <= bindparam("p"), Reservation.client_order_id.is_not(None))
_RESERVED = select(func.coalesce(func.sum(Reservation.amount), 0.0)).where(_HELD)
_SNAPSHOT = select(
    Capital.cash, Capital.principal, Capital.peak_equity, Capital.day_start_equity, Capital.locked_profit,
    Capital.principal_locked,
    select(func.coalesce(func.sum(Position.qty * Position.mark_price), 0.0))
    .where(Position.account == bindparam("a"), Position.qty > 0).scalar_subquery(),
    _RESERVED.scalar_subquery(),
    select(func.coalesce(func.sum(Reservation.amount), 0.0)).where(_HELD, _BLOCKING).scalar_subquery(),
    select(Flag.on).where(Flag.name == HARDSTOP).scalar_subquery(),
).where(Capital.account == bindparam("a"))
_LOCK_ROW = select(Capital.account).where(Capital.account == bindparam("a")).with_for_update()
_VICTIMS = select(Reservation.id, Reservation.amount).where(
    _HELD, Reservation.priority > bindparam("p"), Reservation.client_order_id.is_(None)).order_by(
    Reservation.priority.desc(), Reservation.id.desc())
_PREEMPT = update(Reservation).where(Reservation.id == bindparam("rid")).values(status="preempted")
_INSERT = insert(Reservation).values(**{c: bindparam(c) for c in (
    "account", "owner", "kind", "priority", "amount", "status", "client_order_id", "created_at", "expires_at")})


def snapshot_for(sql: Sql, rules: Rules, account: str, now: float, priority: int) -> tuple[AccountSnapshot, float]:
    """The account as a request of `priority` sees it (read-only; the capital row is locked), and
    the total of every live reservation. Marks are the last ones the engine recorded."""
    if sql.dialect == "postgresql":  # SQLite's BEGIN IMMEDIATE already holds the write lock
        sql.rows(_LOCK_ROW, {"a": account})
    found = sql.rows(_SNAPSHOT, {"a": account, "now": now, "p": priority})
    if not found:
        raise LookupError(f"no account {account!r} in the ledger")
    row = found[0]
    cash, principal, peak, day_start, locked_profit, principal_locked, positions, total, blocking, hardstop = row
    equity = cash + float(positions)
    snap = AccountSnapshot(equity=equity, cash=cash, principal=principal, peak_equity=max(peak, equity),
                           day_start_equity=day_start, locked_profit=locked_profit,
                           principal_locked=bool(principal_locked) or rules.principal_should_lock(equity, principal),
                           reserved=float(blocking), hardstop=bool(hardstop))
    return snap, float(total)


def reserve_in(s: Session | Connection | Sql, rules: Rules, account: str, owner: str, kind: str, amount: float, now: float,
               ttl_s: float | None, client_order_id: str | None = None,
               refreshed: Refreshed | None = None) -> ReservationResult:
    """Grant, grant by preempting, or deny one reservation (caller commits and audits). The
    engine passes the snapshot it has just refreshed under the same lock."""
    if kind not in PRIORITIES:
        raise ValueError(f"unknown reservation kind {kind!r}; one of {', '.join(PRIORITIES)}")
    if not amount > 0 or amount != amount:
        return ReservationResult(False, kind, amount, (f"amount {amount!r} is not positive",))
    sql = CoreSql(s.connection()) if isinstance(s, Session) else CoreSql(s) if isinstance(s, Connection) else s
    priority = PRIORITIES[kind]
    if refreshed is None:
        snap, reserved_all = snapshot_for(sql, rules, account, now, priority)
    else:
        snap = refreshed.snapshot
        reserved_all = float(sql.rows(_RESERVED, {"a": account, "now": now})[0][0])
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
        for rid, held in sql.rows(_VICTIMS, {"a": account, "now": now, "p": priority}):
            if shortfall <= EPS:
                break
            sql.run(_PREEMPT, {"rid": rid})
            preempted.append(int(rid))
            shortfall -= held
    res_id = sql.run(_INSERT, {
        "account": account, "owner": owner, "kind": kind, "priority": priority, "amount": amount,
        "status": "active", "client_order_id": client_order_id, "created_at": now,
        "expires_at": None if ttl_s is None else now + ttl_s})
    why = f"granted ${amount:.2f} of ${free_for_me:.2f} free for {kind}"
    if preempted:
        why += f", preempting lower-priority reservation(s) {preempted}"
    return ReservationResult(True, kind, amount, (why,), res_id, tuple(preempted), free_for_me)


_CLOSE = update(Reservation).where(Reservation.id == bindparam("rid"), Reservation.status == "active").values(
    status=bindparam("st"))
_EXPIRE = update(Reservation).where(
    Reservation.account == bindparam("a"), Reservation.status == "active", Reservation.expires_at.is_not(None),
    Reservation.expires_at <= bindparam("now")).values(status="expired")


def release_in(sql: Sql, account: str, reservation_id: int, status: str, now: float) -> bool:
    """Release (or mark consumed) one active reservation and expire stale ones; False if it was
    not active. Two statements, no ORM: releases hold the same lock reservations wait for."""
    done = sql.run(_CLOSE, {"rid": reservation_id, "st": status}) > 0
    sql.run(_EXPIRE, {"a": account, "now": now})
    return done


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
