"""Money arithmetic inside one ledger transaction: the account snapshot and fills → cash,
positions, closed round trips and profit locks. Callers hold the write transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from nettrace_dagster.ledger.db import serialize
from nettrace_dagster.ledger.models import (
    Capital,
    ClosedTrade,
    Fill,
    Flag,
    Order,
    Position,
    ProfitLock,
    Reservation,
    StrategyState,
    live_reservation,
)
from nettrace_dagster.rules import AccountSnapshot, Rules, StrategyRecord

DUST_USD = 0.01  # a remainder worth less than this closes the round trip (exchange lot rounding)
HARDSTOP = "hardstop"  # the kill switch's flag: one for every account (HARDSTOP stops everything)


class AccountModeError(RuntimeError):
    """An account of one mode (paper/live) was opened in the other: their money never mixes."""


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def ensure_account(s: Session, account: str, initial_capital: float, now: float,
                   mode: str | None = "paper") -> Capital:
    """The account's row, created with `initial_capital` if new. With `mode`, an account of the
    other mode is refused (None: whatever it is, e.g. for the coordinator's reservations)."""
    serialize(s, f"account:{account}")  # two first-time creators must not both insert
    cap = s.get(Capital, account)
    if cap is not None and mode is not None and (cap.mode or "paper") != mode:
        if _has_history(s, account):
            raise AccountModeError(f"ledger account {account!r} holds {cap.mode} money; {mode} trading keeps "
                                   f"its own account and never starts on {cap.mode} state")
        s.delete(cap)  # created by someone who did not say its mode (the coordinator) and never used
        s.flush()
        cap = None
    if cap is None:
        cap = Capital(account=account, mode=mode or "paper", principal=initial_capital, cash=initial_capital,
                      peak_equity=initial_capital, day=utc_day(now), day_start_equity=initial_capital,
                      last_equity=initial_capital, locked_profit=0.0, principal_locked=False, updated_at=now)
        s.add(cap)
        s.flush()
    return cap


def _has_history(s: Session, account: str) -> bool:
    return any(s.scalar(select(func.count()).select_from(table).where(table.account == account))
               for table in (Order, Position, ClosedTrade, ProfitLock))


def lock_account(s: Session, account: str) -> Capital:
    """The account row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already holds the database's write lock)."""
    cap = s.scalars(select(Capital).where(Capital.account == account).with_for_update()).one_or_none()
    if cap is None:
        raise LookupError(f"no account {account!r} in the ledger")
    return cap


def hardstop_on(s: Session, account: str | None = None) -> bool:
    """The persisted kill switch: the one place its flag is read. With `account`, a sleeve's own
    latch counts too (`account_hardstop_flag`): a candidate's paper sleeve that crosses a Rule 1
    line stops itself, never the account that trades the parameters in force."""
    flag = s.get(Flag, HARDSTOP)
    if flag is not None and flag.on:
        return True
    if account is None:
        return False
    own = s.get(Flag, account_hardstop_flag(account))
    return bool(own and own.on)


def account_hardstop_flag(account: str) -> str:
    """The flag a sleeve-scoped risk gate latches instead of the global HARDSTOP."""
    return f"{HARDSTOP}:{account}"


@dataclass
class Refreshed:
    capital: Capital
    snapshot: AccountSnapshot
    positions: dict[tuple[str, str], Position]  # (strategy, symbol) -> open position


def refresh(s: Session, rules: Rules, account: str, marks: dict[str, float] | None = None,
            now: float | None = None, priority: int | None = None) -> Refreshed:
    """Lock the account, revalue it at `marks`, roll the UTC day, raise the peak, latch the
    principal lock, and return the snapshot the rules judge. With `priority`, only reservations
    that a request of that priority cannot preempt count as reserved."""
    now = time.time() if now is None else now
    cap = lock_account(s, account)
    positions = {(p.strategy, p.symbol): p for p in s.scalars(
        select(Position).where(Position.account == account, Position.qty > 0))}
    for p in positions.values():
        if marks and p.symbol in marks and marks[p.symbol] > 0:
            p.mark_price = marks[p.symbol]
    equity = cap.cash + sum(p.qty * p.mark_price for p in positions.values())
    if cap.day != utc_day(now):
        cap.day, cap.day_start_equity = utc_day(now), equity
    cap.peak_equity = max(cap.peak_equity, equity)
    cap.last_equity, cap.updated_at = equity, now
    if not cap.principal_locked and rules.principal_should_lock(equity, cap.principal):
        cap.principal_locked = True
        s.add(ProfitLock(account=account, source="principal", realised=equity - cap.principal,
                         locked=cap.principal, ts=now))
    held = (Reservation.account == account) & live_reservation(now)
    if priority is not None:
        held &= or_(Reservation.priority <= priority, Reservation.client_order_id.is_not(None))
    reserved = s.scalar(select(func.coalesce(func.sum(Reservation.amount), 0.0)).where(held)) or 0.0
    snap = AccountSnapshot(equity=equity, cash=cap.cash, principal=cap.principal, peak_equity=cap.peak_equity,
                           day_start_equity=cap.day_start_equity, locked_profit=cap.locked_profit,
                           principal_locked=cap.principal_locked, reserved=float(reserved),
                           hardstop=hardstop_on(s, account))
    return Refreshed(cap, snap, positions)


def strategy_record(s: Session, account: str, strategy: str) -> StrategyRecord:
    trades, wins, pnl, mean_r, mean_r2 = s.execute(select(
        func.count(ClosedTrade.id), func.coalesce(func.sum(case((ClosedTrade.pnl > 0, 1), else_=0)), 0),
        func.coalesce(func.sum(ClosedTrade.pnl), 0.0), func.coalesce(func.avg(ClosedTrade.ret), 0.0),
        func.coalesce(func.avg(ClosedTrade.ret * ClosedTrade.ret), 0.0),
    ).where(ClosedTrade.account == account, ClosedTrade.strategy == strategy)).one()
    var = max(float(mean_r2) - float(mean_r) ** 2, 0.0)
    sharpe = float(mean_r) / var ** 0.5 if var > 0 else 0.0
    state = s.get(StrategyState, (account, strategy))
    return StrategyRecord(trades=int(trades), wins=int(wins), net_pnl=float(pnl), sharpe=sharpe,
                          fired=bool(state and state.status == "fired"))


def apply_fill(s: Session, rules: Rules, cap: Capital, order: Order, qty: float, quote: float, fee: float,
               fill_key: str, now: float, fee_base: float = 0.0, dust_qty: float = 0.0) -> Fill | None:
    """Book one fill (idempotent by `fill_key`): cash, position, and on a round trip's end the
    closed trade and Rule 3's profit lock. `fee` is the whole fee valued in quote; `fee_base` the
    units of base the venue withheld (they never reach the position). None if already booked."""
    if qty <= 0 or s.scalar(select(Fill.id).where(Fill.fill_key == fill_key)) is not None:
        return None
    key = (order.account, order.strategy, order.symbol)
    pos = s.get(Position, key) or Position(account=key[0], strategy=key[1], symbol=key[2], qty=0.0, cost=0.0,
                                           mark_price=0.0, realised_pnl=0.0, trip_pnl=0.0, trip_cost=0.0,
                                           updated_at=now)
    s.add(pos)
    price = quote / qty
    realised = 0.0
    if order.side == "buy":
        paid = quote + fee - fee_base * price  # the base-asset fee is paid in units, not cash
        cap.cash -= paid
        pos.qty, pos.cost, pos.trip_cost = pos.qty + qty - fee_base, pos.cost + paid, pos.trip_cost + paid
    else:
        share = min(qty / pos.qty, 1.0) if pos.qty > 0 else 0.0
        cost_part = pos.cost * share
        realised = quote - fee - cost_part
        cap.cash += quote - fee
        pos.qty, pos.cost = max(pos.qty - qty, 0.0), pos.cost - cost_part
        pos.realised_pnl += realised
        pos.trip_pnl += realised
        if pos.qty * price < DUST_USD or pos.qty < dust_qty:
            _close_trip(s, rules, cap, pos, order.client_order_id, now)
    pos.mark_price, pos.updated_at = price, now
    fill = Fill(order_id=order.id, fill_key=fill_key, qty=qty, price=price, fee=fee, realised=realised, ts=now)
    s.add(fill)
    return fill


def _close_trip(s: Session, rules: Rules, cap: Capital, pos: Position, coid: str, now: float) -> None:
    """A round trip ended: count it (win rate, fire/clone) and lock Rule 3's share of a profit."""
    pnl = pos.trip_pnl
    s.add(ClosedTrade(account=pos.account, strategy=pos.strategy, symbol=pos.symbol, pnl=pnl,
                      ret=pnl / pos.trip_cost if pos.trip_cost > 0 else 0.0, client_order_id=coid, closed_at=now))
    _, locked = rules.split_profit(pnl)
    if locked > 0:
        cap.locked_profit += locked
        s.add(ProfitLock(account=pos.account, source=coid, realised=pnl, locked=locked, ts=now))
    pos.qty, pos.cost, pos.trip_pnl, pos.trip_cost = 0.0, 0.0, 0.0, 0.0
