"""Account operations of the engine: marking to market, HARDSTOP on/off, Rule 3 verdicts, status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from nettrace_dagster.coordinator.models import Reservation
from nettrace_dagster.execution import accounting as acc
from nettrace_dagster.execution.models import OPEN_STATES, ClosedTrade, EquityMark, Flag, Order, StrategyState
from nettrace_dagster.rules import AccountSnapshot

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nettrace_dagster.execution.engine import Event, ExecutionEngine


@dataclass(frozen=True)
class MarkResult:
    snapshot: AccountSnapshot
    rule_status: dict[str, Any]
    verdicts: dict[str, str] = field(default_factory=dict)  # strategy -> verdict made at this mark


@dataclass(frozen=True)
class HardstopResult:
    on: bool
    changed: bool
    reasons: tuple[str, ...]


def mark(engine: ExecutionEngine, prices: dict[str, float]) -> MarkResult:
    events: list[Event] = []
    with engine.ledger.tx() as s:
        now = engine.clock()
        r = acc.refresh(s, engine.rules, engine.account, prices, now)
        engine._latch_hardstop(s, r, events)
        snap = r.snapshot
        s.add(EquityMark(account=engine.account, ts=now, equity=snap.equity, cash=snap.cash,
                         positions_value=snap.equity - snap.cash, drawdown=engine.rules.drawdown(snap),
                         daily_pnl=snap.equity - snap.day_start_equity, hardstop=snap.hardstop))
        verdicts = judge_strategies(engine, s, now, events)
    engine._flush(events)
    return MarkResult(snap, engine.rules.status(snap), verdicts)


def judge_strategies(engine: ExecutionEngine, s: Session, now: float, events: list[Event]) -> dict[str, str]:
    """Rule 3: fire losing strategies (they may not open trades again), flag winners for cloning
    (the promotion pipeline picks `clone_requested` up). A fired strategy stays fired."""
    made: dict[str, str] = {}
    names = s.scalars(select(ClosedTrade.strategy).where(ClosedTrade.account == engine.account).distinct())
    for name in list(names):
        verdict = engine.rules.verdict(acc.strategy_record(s, engine.account, name))
        state = s.get(StrategyState, name)
        current = state.status if state else "active"
        new = "fired" if not verdict.allowed else (
            "clone_requested" if verdict.reasons[0].startswith("clone") else current)
        if new == current or current == "fired" or (current == "clone_requested" and new == "active"):
            continue
        state = state or StrategyState(strategy=name)
        state.status, state.reason, state.updated_at = new, verdict.reasons[0], now
        s.add(state)
        made[name] = new
        events.append(("strategy_" + new, {"strategy": name, "reasons": verdict.reasons}))
    return made


def set_hardstop(engine: ExecutionEngine, on: bool, reason: str, by: str, reset_peak: bool) -> HardstopResult:
    """Turn HARDSTOP on (always possible) or off. Off is refused while a Rule 1 trigger still
    holds; `reset_peak` (an explicit, audited operator act) first re-bases the drawdown peak on
    today's equity. The equity floor cannot be reset."""
    events: list[Event] = []
    with engine.ledger.tx() as s:
        now = engine.clock()
        r = acc.refresh(s, engine.rules, engine.account, None, now)
        flag = s.get(Flag, "hardstop") or Flag(name="hardstop", on=False, reason="", updated_by="", updated_at=now)
        was = bool(flag.on)
        if not on:
            if reset_peak and r.snapshot.equity > engine.rules.equity_floor_usd:
                events.append(("peak_reset", {"by": by, "old_peak": r.capital.peak_equity, "new_peak": r.snapshot.equity}))
                r.capital.peak_equity = r.snapshot.equity
                r = acc.refresh(s, engine.rules, engine.account, None, now)
            triggers = engine.rules.hardstop_reasons(r.snapshot)
            if triggers:
                events.append(("hardstop_off_refused", {"by": by, "reasons": triggers}))
                result = HardstopResult(was, False, ("refused: a Rule 1 trigger still holds", *triggers))
            else:
                result = HardstopResult(False, was, (reason or "turned off",))
        else:
            result = HardstopResult(True, not was, (reason or "turned on",))
        if result.changed:
            flag.on, flag.reason, flag.updated_by, flag.updated_at = result.on, result.reasons[0], by, now
            s.add(flag)
            events.append(("hardstop_" + ("on" if result.on else "off"), {"by": by, "reasons": result.reasons}))
    engine._flush(events)
    return result


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def status(engine: ExecutionEngine) -> dict[str, Any]:
    """Everything an operator asks first: money, positions, rules, orders, strategies."""
    with engine.ledger.tx() as s:  # refresh rolls the day and peak: a (tiny) write
        now = engine.clock()
        r = acc.refresh(s, engine.rules, engine.account, None, now)
        snap = r.snapshot
        flag = s.get(Flag, "hardstop")
        orders = dict(s.execute(select(Order.status, func.count()).where(Order.account == engine.account)
                                .group_by(Order.status)).all())
        n_res, sum_res = s.execute(select(func.count(), func.coalesce(func.sum(Reservation.amount), 0.0)).where(
            Reservation.account == engine.account, Reservation.status == "active",
            (Reservation.expires_at.is_(None)) | (Reservation.expires_at > now))).one()
        names = sorted(set(s.scalars(select(ClosedTrade.strategy).where(ClosedTrade.account == engine.account)))
                       | {p.strategy for p in r.positions.values()})
        strategies = []
        for name in names:
            rec = acc.strategy_record(s, engine.account, name)
            state = s.get(StrategyState, name)
            strategies.append({"strategy": name, "trades": rec.trades, "win_rate": rec.win_rate,
                               "net_pnl": rec.net_pnl, "sharpe": rec.sharpe,
                               "status": state.status if state else "active"})
    positions = [{"strategy": p.strategy, "symbol": p.symbol, "qty": p.qty, "cost": p.cost,
                  "mark_price": p.mark_price, "value": p.qty * p.mark_price,
                  "unrealised_pnl": p.qty * p.mark_price - p.cost} for p in r.positions.values()]
    return {
        "account": engine.account, "broker": engine.broker.name, "mode": engine.broker.mode,
        "equity": snap.equity, "cash": snap.cash, "principal": snap.principal,
        "hardstop": {"on": bool(flag and flag.on), "reason": flag.reason if flag else "",
                     "updated_by": flag.updated_by if flag else "",
                     "updated_at": _iso(flag.updated_at) if flag else None},
        "rules": engine.rules.status(snap), "positions": positions,
        "orders": {"by_status": orders, "open": sum(v for k, v in orders.items() if k in OPEN_STATES)},
        "reservations": {"active": int(n_res), "amount": float(sum_res)}, "strategies": strategies,
    }
