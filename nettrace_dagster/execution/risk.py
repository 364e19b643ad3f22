"""The risk gate: one object per account holds the rules, the HARDSTOP latch and the decision on
every intent, in the manner of NautilusTrader's RiskEngine. Every order of every mode passes
`RiskGate.decide`; nothing else reads or writes the HARDSTOP flag.

It needs only the ledger: the kill switch, `status` and marking work with no broker, no keys and
no network. Its audit records are staged in the ledger (`AuditOutbox`) inside the transaction that
changes money, then appended to the JSONL log after the commit; an unwritable audit folder leaves
them waiting in the ledger (and says so) instead of failing the order or the kill switch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nettrace_dagster.audit import append_audit
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.decide import decide
from nettrace_dagster.execution.intents import Decision, Intent
from nettrace_dagster.ledger import accounting as acc
from nettrace_dagster.ledger.accounting import HARDSTOP
from nettrace_dagster.ledger.db import Ledger, ledger_of
from nettrace_dagster.ledger.models import (
    OPEN_STATES,
    AuditOutbox,
    ClosedTrade,
    EquityMark,
    Flag,
    Order,
    Reservation,
    StrategyState,
    live_reservation,
)
from nettrace_dagster.rules import AccountSnapshot, Rules, StrategyRecord

Event = tuple[str, dict[str, Any]]
AUDIT_LOG = "conflict_log"  # the engine's decisions share the coordinator's log, as before


def venue_flag(account: str) -> str:
    """The flag a failed venue reconciliation raises for one account (entries stop until it clears)."""
    return f"venue_mismatch:{account}"


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
    audit_pending: int = 0  # records still waiting in the ledger because the audit log is unwritable
    audit_error: str = ""


class RiskGate:
    """Rules + HARDSTOP + decisions for one account of one mode (paper or live)."""

    def __init__(self, ledger: Ledger, rules: Rules | None = None, account: str = "main",
                 audit_dir: Path | str | None = None, initial_capital: float = 100.0, mode: str = "paper",
                 clock: Callable[[], float] = time.time, hardstop_scope: str = "global") -> None:
        self.ledger, self.rules, self.account, self.mode = ledger, rules or Rules(), account, mode
        # The rules before any parameter set tightened them (the trader re-derives from these).
        self.base_rules = self.rules
        # "global": a Rule 1 trigger latches the one HARDSTOP (every account stops). "account": a
        # promotion sleeve's trigger latches only its own flag (its paper money, not the account's).
        if hardstop_scope not in ("global", "account"):
            raise ValueError(f"hardstop_scope must be global or account, not {hardstop_scope!r}")
        self.latch_flag = HARDSTOP if hardstop_scope == "global" else acc.account_hardstop_flag(account)
        self.audit_dir = Path(audit_dir) if audit_dir is not None else None
        self.clock = clock
        self.audit_error = ""  # the last failure to write the audit log ("" once it works again)
        with ledger.tx() as s:
            acc.ensure_account(s, account, initial_capital, clock(), mode)

    # --- transactions with their audit records -------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[tuple[Session, list[Event]]]:
        """A ledger write transaction whose events are staged in it and appended after commit."""
        events: list[Event] = []
        with self.ledger.tx() as s:
            yield s, events
            self._stage(s, events)
        if events:
            self.flush_audit()
            self._alert_hardstop(events)

    def _alert_hardstop(self, events: list[Event]) -> None:
        """HARDSTOP latched (committed): a P0 alert, posted on a background thread so the trading
        path neither waits for a webhook nor sees its failure."""
        for name, fields in events:
            if name == "hardstop_on":
                from nettrace_dagster.notify import alert

                reasons = fields.get("reasons") or []
                why = "; ".join(map(str, reasons)) if isinstance(reasons, list | tuple) else str(reasons)
                alert("P0", f"HARDSTOP on ({self.account})", f"by {fields.get('by', '?')}: {why}",
                      wait=False, audit_dir=self.audit_dir)

    def _stage(self, s: Session, events: list[Event]) -> None:
        if self.audit_dir is None:
            return
        now = self.clock()
        ts = datetime.fromtimestamp(now, UTC).isoformat()
        for name, fields in events:
            s.add(AuditOutbox(log=AUDIT_LOG, created_at=now, record=json.dumps(
                {"ts": ts, "decision": name, "account": self.account, **fields}, default=str)))

    def audit(self, name: str, **fields: Any) -> None:
        """Record one event that changed no money (through the same outbox, so nothing is lost)."""
        with self.tx() as (_s, events):
            events.append((name, fields))

    def flush_audit(self) -> int:
        """Append staged records to their logs, oldest first; the number still waiting (0: all
        written). Never raises for an unwritable log: the records stay in the ledger."""
        if self.audit_dir is None:
            return 0
        drained = False
        try:  # not fsync'd: a power cut can only bring back rows already appended (same outbox_id)
            with self.ledger.tx(durable=False) as s:
                rows = list(s.scalars(select(AuditOutbox).order_by(AuditOutbox.id).limit(1000)
                                      .with_for_update(skip_locked=True)))
                for row in rows:
                    try:
                        append_audit(self.audit_dir, row.log, {**json.loads(row.record), "outbox_id": row.id})
                    except OSError as exc:
                        self.audit_error = (f"audit log {self.audit_dir / (row.log + '.jsonl')} unwritable: "
                                            f"{exc.strerror or exc}")
                        break
                    s.delete(row)  # at least once: a crash right here repeats the line (same outbox_id)
                else:
                    self.audit_error = ""
                    drained = len(rows) < 1000  # a short batch written whole: nothing is left
        except Exception as exc:  # noqa: BLE001 - a failing ledger is reported by the caller's next step
            self.audit_error = f"audit flush failed: {type(exc).__name__}"
        # Counting costs a read on every order's path: only when something may still be waiting.
        return 0 if drained else self.pending_audit()

    # --- Rule 1 --------------------------------------------------------------------------------
    def refresh(self, s: Session, marks: Mapping[str, float] | None = None, priority: int | None = None,
                ) -> acc.Refreshed:
        """The account revalued at `marks`, with HARDSTOP latched (persisted) if a trigger holds."""
        return acc.refresh(s, self.rules, self.account, dict(marks or {}), self.clock(), priority=priority)

    def latch_hardstop(self, s: Session, r: acc.Refreshed, events: list[Event]) -> None:
        """Rule 1 triggers turn HARDSTOP on the moment they are seen."""
        reasons = self.rules.hardstop_reasons(r.snapshot)
        if not reasons or r.snapshot.hardstop:
            return
        self._set_flag(s, True, "; ".join(reasons), "rules", self.latch_flag)
        r.snapshot = replace(r.snapshot, hardstop=True)
        events.append(("hardstop_on", {"by": "rules", "reasons": reasons, "equity": r.snapshot.equity}))

    def _set_flag(self, s: Session, on: bool, reason: str, by: str, name: str = HARDSTOP) -> None:
        flag = s.get(Flag, name) or Flag(name=name)
        flag.on, flag.reason, flag.updated_by, flag.updated_at = on, reason, by, self.clock()
        s.add(flag)

    # --- the decision --------------------------------------------------------------------------
    def decide(self, s: Session, intent: Intent, costs: CostModel, min_order_usd: float,
               marks: Mapping[str, float] | None, priority: int,
               venue_holdings: Mapping[str, float] | None, events: list[Event]) -> tuple[Decision, acc.Refreshed]:
        """Judge one intent inside the caller's transaction. Entries are judged on a current mark
        of *every* held symbol (a stale mark would hide a loss from Rule 1), and orders still in
        flight count as held (an unknown entry may have filled)."""
        prices = {**(marks or {}), intent.symbol: intent.price}
        r = self.refresh(s, prices, priority)
        self.latch_hardstop(s, r, events)
        coid = intent.client_order_id
        pos = r.positions.get((intent.strategy, intent.symbol))
        held = pos.qty if pos else 0.0
        in_flight = s.scalar(select(func.count()).select_from(Order).where(
            Order.account == self.account, Order.strategy == intent.strategy, Order.symbol == intent.symbol,
            Order.status.in_(OPEN_STATES)))
        if intent.kind == "exit":
            if in_flight:
                return Decision(True, "exit", ("an order for this strategy and symbol is still in flight: "
                                               "it is resolved before another exit is sent",),
                                client_order_id=coid), r
            if venue_holdings is not None:  # never sell what the exchange does not hold
                held = min(held, max(venue_holdings.get(base_asset(intent.symbol), 0.0), 0.0))
            return decide(self.rules, costs, r.snapshot, StrategyRecord(), intent, held, min_order_usd), r
        record = acc.strategy_record(s, self.account, intent.strategy)
        d = decide(self.rules, costs, r.snapshot, record, intent, held, min_order_usd)
        extra = []
        stale = sorted({p.symbol for p in r.positions.values()} - set(prices))
        if stale:
            extra.append(f"no current price for held {', '.join(stale)}: Rule 1 cannot be judged on stale marks")
        if in_flight:
            extra.append("an order for this strategy and symbol is still in flight (counts as held)")
        venue = s.get(Flag, venue_flag(self.account))
        if venue is not None and venue.on:
            extra.append(f"the account does not match the exchange: {venue.reason}")
        if extra:
            d = Decision(False, "entry", (*(d.reasons if not d.approved else ()), *extra), client_order_id=coid)
        return d, r

    # --- account operations --------------------------------------------------------------------
    def mark(self, prices: Mapping[str, float]) -> MarkResult:
        """Revalue at `prices`, latch HARDSTOP if due, record an equity mark, judge strategies."""
        with self.tx() as (s, events):
            now = self.clock()
            r = self.refresh(s, prices)
            self.latch_hardstop(s, r, events)
            snap = r.snapshot
            s.add(EquityMark(account=self.account, ts=now, equity=snap.equity, cash=snap.cash,
                             positions_value=snap.equity - snap.cash, drawdown=self.rules.drawdown(snap),
                             daily_pnl=snap.equity - snap.day_start_equity, hardstop=snap.hardstop))
            verdicts = self.judge_strategies(s, now, events)
        return MarkResult(snap, self.rules.status(snap), verdicts)

    def judge_strategies(self, s: Session, now: float, events: list[Event]) -> dict[str, str]:
        """Rule 3 in this account: fire losing strategies (they may not open trades here again),
        flag winners for cloning (the promotion pipeline picks `clone_requested` up)."""
        made: dict[str, str] = {}
        names = s.scalars(select(ClosedTrade.strategy).where(ClosedTrade.account == self.account).distinct())
        for name in list(names):
            verdict = self.rules.verdict(acc.strategy_record(s, self.account, name))
            state = s.get(StrategyState, (self.account, name))
            current = state.status if state else "active"
            new = "fired" if not verdict.allowed else (
                "clone_requested" if verdict.reasons[0].startswith("clone") else current)
            if new == current or current == "fired" or (current == "clone_requested" and new == "active"):
                continue
            state = state or StrategyState(account=self.account, strategy=name)
            state.status, state.reason, state.updated_at = new, verdict.reasons[0], now
            s.add(state)
            made[name] = new
            events.append(("strategy_" + new, {"strategy": name, "reasons": verdict.reasons}))
        return made

    def set_hardstop(self, on: bool, reason: str = "", by: str = "operator", reset_peak: bool = False) -> HardstopResult:
        """Turn HARDSTOP on (always possible, with the ledger alone) or off. Off is refused while
        a Rule 1 trigger still holds; `reset_peak` (an explicit, audited operator act) first
        re-bases the drawdown peak on today's equity. The equity floor cannot be reset."""
        with self.tx() as (s, events):
            r = self.refresh(s)
            was = r.snapshot.hardstop
            if not on:
                if reset_peak and r.snapshot.equity > self.rules.equity_floor_usd:
                    events.append(("peak_reset", {"by": by, "old_peak": r.capital.peak_equity,
                                                  "new_peak": r.snapshot.equity}))
                    r.capital.peak_equity = r.snapshot.equity
                    r = self.refresh(s)
                triggers = self.rules.hardstop_reasons(r.snapshot)
                if triggers:
                    events.append(("hardstop_off_refused", {"by": by, "reasons": triggers}))
                    result = HardstopResult(was, False, ("refused: a Rule 1 trigger still holds", *triggers))
                else:
                    result = HardstopResult(False, was, (reason or "turned off",))
            else:
                result = HardstopResult(True, not was, (reason or "turned on",))
            if result.changed:
                self._set_flag(s, result.on, result.reasons[0], by)
                events.append(("hardstop_" + ("on" if result.on else "off"), {"by": by, "reasons": result.reasons}))
        pending = self.pending_audit()
        return replace(result, audit_pending=pending, audit_error=self.audit_error if pending else "")

    def set_venue_mismatch(self, problems: list[str], by: str = "reconcile") -> bool:
        """Raise (or clear, with no problems) the account's venue-mismatch flag; True if it changed."""
        with self.tx() as (s, events):
            name = venue_flag(self.account)
            flag = s.get(Flag, name)
            was = bool(flag and flag.on)
            on = bool(problems)
            if was == on and (not on or flag.reason == "; ".join(problems)):
                return False
            flag = flag or Flag(name=name)
            flag.on, flag.reason, flag.updated_by, flag.updated_at = on, "; ".join(problems), by, self.clock()
            s.add(flag)
            events.append(("venue_mismatch" if on else "venue_match", {"problems": problems, "severity": "P1"}))
        return True

    def pending_audit(self) -> int:
        with self.ledger.read() as s:
            return int(s.scalar(select(func.count()).select_from(AuditOutbox)) or 0)

    def status(self) -> dict[str, Any]:
        """Everything an operator asks first: money, positions, rules, orders, strategies. A Rule 1
        trigger that holds is latched here too, so status never says "off" while one holds."""
        from nettrace_dagster.paramsets.in_force import current_in

        with self.tx() as (s, events):
            now = self.clock()
            r = self.refresh(s)
            self.latch_hardstop(s, r, events)
            snap = r.snapshot
            flag = s.get(Flag, HARDSTOP)
            venue = s.get(Flag, venue_flag(self.account))
            orders = dict(s.execute(select(Order.status, func.count()).where(Order.account == self.account)
                                    .group_by(Order.status)).all())
            n_res, sum_res = s.execute(select(func.count(), func.coalesce(func.sum(Reservation.amount), 0.0)).where(
                Reservation.account == self.account, live_reservation(now))).one()
            names = sorted(set(s.scalars(select(ClosedTrade.strategy).where(ClosedTrade.account == self.account)))
                           | {p.strategy for p in r.positions.values()})
            strategies = []
            for name in names:
                rec = acc.strategy_record(s, self.account, name)
                state = s.get(StrategyState, (self.account, name))
                strategies.append({"strategy": name, "trades": rec.trades, "win_rate": rec.win_rate,
                                   "net_pnl": rec.net_pnl, "sharpe": rec.sharpe,
                                   "status": state.status if state else "active"})
            current = current_in(s)
            in_force = sorted(current.strategies)
            fired = [n for n in in_force if (st := s.get(StrategyState, (self.account, n))) and st.status == "fired"]
            positions = [{"strategy": p.strategy, "symbol": p.symbol, "qty": p.qty, "cost": p.cost,
                          "mark_price": p.mark_price, "value": p.qty * p.mark_price,
                          "unrealised_pnl": p.qty * p.mark_price - p.cost} for p in r.positions.values()]
        rules = self.rules.status(snap)
        if venue is not None and venue.on:
            rules["entries_allowed"] = False
            rules["blocked_by"] = [*rules["blocked_by"], f"the account does not match the exchange: {venue.reason}"]
        # Rule 3 per strategy: when every strategy in force is fired, no entry can happen here even
        # though the account itself allows entries (keys are added, never renamed).
        rules["strategies_in_force"] = in_force
        rules["strategies_fired"] = fired
        rules["strategies_may_enter"] = bool(rules["entries_allowed"]) and len(fired) < len(in_force)
        if in_force and len(fired) == len(in_force):
            rules["blocked_by"] = [*rules["blocked_by"],
                                   f"no strategy may enter: all {len(in_force)} fired (Rule 3)"]
        return {
            "account": self.account, "mode": self.mode,
            "equity": snap.equity, "cash": snap.cash, "principal": snap.principal,
            "hardstop": {"on": bool(flag and flag.on), "reason": flag.reason if flag else "",
                         "updated_by": flag.updated_by if flag else "",
                         "updated_at": _iso(flag.updated_at) if flag else None},
            "rules": rules, "positions": positions,
            "orders": {"by_status": orders, "open": sum(v for k, v in orders.items() if k in OPEN_STATES)},
            "reservations": {"active": int(n_res), "amount": float(sum_res)}, "strategies": strategies,
            "audit": {"pending": self.pending_audit(), "error": self.audit_error},
            # the set the trader trades (the ledger's FULL set; id None: the defaults)
            "params_in_force": {"id": current.id, "param_set_id": current.param_set_id,
                                "candidate_id": current.candidate_id, "kind": current.kind},
        }


def base_asset(symbol: str) -> str:
    """BTC-USDT -> BTC."""
    return symbol.split("-")[0]


def quote_asset(symbol: str) -> str:
    """BTC-USDT -> USDT."""
    return symbol.split("-")[-1]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# Paper and live money never share a ledger account.
ACCOUNT_OF_MODE = {"paper": "main", "live": "live"}


def trading_mode(settings: Any) -> str:
    """`live` when the live switch is on (keys are the broker's business), else `paper`."""
    return "live" if settings.nettrace_live_trading else "paper"


def gate_from_settings(settings: Any) -> RiskGate:
    """The risk gate of the configured mode's account: the ledger alone, no broker and no keys
    (the kill switch and `status` must work when the exchange or its keys do not)."""
    from nettrace_dagster.rules import load_rules

    mode = trading_mode(settings)
    return RiskGate(ledger_of(settings), load_rules(settings), ACCOUNT_OF_MODE[mode],
                    settings.audit_dir, float(settings.nettrace_initial_capital_usd), mode)
