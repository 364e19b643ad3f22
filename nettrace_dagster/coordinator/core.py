"""`Coordinator`: the one arbiter of capital, compute, API budget and conflicts, for every process.

Each method is one short ledger transaction (the account row lock, or SQLite's write lock, makes
it safe across threads and processes) followed by one audit line in `conflict_log.jsonl`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from nettrace_dagster.coordinator import bandit, conflicts, quotas
from nettrace_dagster.coordinator.api_budget import PER_HOUR, PER_MINUTE, ApiBudgetExhausted, try_acquire_in
from nettrace_dagster.coordinator.locks import process_lock
from nettrace_dagster.coordinator.log import AuditSink
from nettrace_dagster.coordinator.reservations import (
    ReservationResult,
    release_in,
    reserve_in,
)
from nettrace_dagster.coordinator.sql import CoreSql, RawSqlite
from nettrace_dagster.execution.accounting import ensure_account, hardstop_on
from nettrace_dagster.execution.db import Ledger, serialize
from nettrace_dagster.execution.models import ClosedTrade
from nettrace_dagster.rules import GateDecision, Rules


class Coordinator:
    def __init__(self, ledger: Ledger, rules: Rules | None = None, audit_dir: Path | str | None = None,
                 account: str = "main", initial_capital: float = 100.0,
                 api_limits: tuple[int, int] = (PER_MINUTE, PER_HOUR),
                 compute_quotas: dict[str, int | None] | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, mode: str | None = None) -> None:
        self.ledger, self.rules, self.account = ledger, rules or Rules(), account
        self.audit = AuditSink(audit_dir)
        self.api_limits, self.quotas = api_limits, compute_quotas or quotas.COMPUTE_QUOTAS
        self.clock, self.sleep = clock, sleep
        with ledger.tx() as s:
            ensure_account(s, account, initial_capital, clock(), mode=mode)

    # --- capital ------------------------------------------------------------------------------
    def reserve(self, owner: str, kind: str, amount: float, ttl_s: float = 60.0) -> ReservationResult:
        """Hold `amount` USD for `owner` with priority `kind` (exit, live, paper, backtest)."""
        if self.ledger.is_sqlite:  # the hot path: no SQLAlchemy machinery while the lock is held
            with self.ledger.raw_sqlite_lease() as dbapi:
                result = reserve_in(RawSqlite(dbapi), self.rules, self.account, owner, kind, amount,
                                    self.clock(), ttl_s)
        else:
            with self.ledger.conn(durable=False) as conn:
                result = reserve_in(conn, self.rules, self.account, owner, kind, amount, self.clock(), ttl_s)
        self.audit.record("reservation", account=self.account, owner=owner, kind=kind, amount=amount,
                          granted=result.granted, reservation_id=result.reservation_id,
                          preempted=list(result.preempted), reasons=list(result.reasons))
        return result

    def release(self, reservation_id: int, consumed: bool = False) -> bool:
        status = "consumed" if consumed else "released"
        if self.ledger.is_sqlite:  # the same hot path as reserve: the lock is held for less
            with self.ledger.raw_sqlite_lease() as dbapi:
                done = release_in(RawSqlite(dbapi), self.account, reservation_id, status, self.clock())
        else:
            with self.ledger.conn(durable=False) as conn:
                done = release_in(CoreSql(conn), self.account, reservation_id, status, self.clock())
        self.audit.record("reservation_" + status, reservation_id=reservation_id, applied=done)
        return done

    def is_active(self, reservation_id: int) -> bool:
        """False once released, consumed, preempted or past its TTL."""
        from nettrace_dagster.coordinator.models import Reservation
        with self.ledger.read() as s:
            res = s.get(Reservation, reservation_id)
            return bool(res and res.status == "active" and (res.expires_at is None or res.expires_at > self.clock()))

    # --- compute ------------------------------------------------------------------------------
    def acquire_slot(self, kind: str, owner: str, ttl_s: float = 3600.0) -> quotas.SlotResult:
        with self.ledger.tx(durable=False) as s:
            serialize(s, f"slots:{kind}")
            result = quotas.acquire_slot_in(s, kind, owner, self.clock(), ttl_s, self.quotas)
        self.audit.record("compute_slot", kind=kind, owner=owner, granted=result.granted,
                          slot_id=result.slot_id, reasons=list(result.reasons))
        return result

    def release_slot(self, slot_id: int) -> bool:
        with self.ledger.tx(durable=False) as s:
            done = quotas.release_slot_in(s, slot_id)
        self.audit.record("compute_slot_released", slot_id=slot_id, applied=done)
        return done

    # --- exchange API budget ------------------------------------------------------------------
    def api_call(self, exchange: str, calls: int = 1, timeout_s: float = 120.0) -> float:
        """Block until `calls` fit the shared budget; the seconds waited. Grants are counted in the
        ledger (not logged line by line); each wait is audited."""
        deadline, waited = self.clock() + timeout_s, 0.0
        while True:
            with self.ledger.tx(durable=False) as s:
                serialize(s, f"api:{exchange}")
                answer = try_acquire_in(s, exchange, calls, self.clock(), *self.api_limits)
            if answer.granted:
                return waited
            self.audit.record("api_throttled", exchange=exchange, calls=calls, wait_s=round(answer.wait_s, 3),
                              minute_calls=answer.minute_calls, hour_calls=answer.hour_calls)
            pause = min(answer.wait_s, deadline - self.clock())
            if pause <= 0:
                raise ApiBudgetExhausted(f"{exchange}: API budget full ({answer.minute_calls}/min, "
                                         f"{answer.hour_calls}/h) for {timeout_s:.0f}s")
            self.sleep(pause)
            waited += pause

    # --- conflicts ----------------------------------------------------------------------------
    def begin(self, kind: str, owner: str, ttl_s: float = 3600.0) -> conflicts.ActivityDecision:
        with self.ledger.tx(durable=False) as s:
            serialize(s, "activities")
            decision = conflicts.begin_in(s, kind, owner, self.clock(), ttl_s, self._hardstop(s))
        self.audit.record("activity_begin", kind=kind, owner=owner, status=decision.status,
                          activity_id=decision.activity_id, affected=list(decision.affected),
                          reasons=list(decision.reasons))
        return decision

    @contextmanager
    def exclusive(self, kind: str, owner: str) -> Iterator[bool]:
        """Hold `owner`'s process lock for `kind` (one driver per account): yields False at once when
        another live process holds it. Taking it proves earlier holders dead, so their leftover
        activities are ended here and the caller may `begin` straight away."""
        with process_lock(self.ledger, f"{kind}-{owner}") as mine:
            if mine:
                with self.ledger.tx(durable=False) as s:
                    serialize(s, "activities")
                    reaped = conflicts.reap_in(s, kind, owner, self.clock())
                if reaped:
                    self.audit.record("activity_reaped", kind=kind, owner=owner, activities=reaped,
                                      reasons=["holder died: its process lock was free"])
            yield mine

    def activity_status(self, activity_id: int, heartbeat_s: float | None = None) -> conflicts.ActivityDecision:
        with self.ledger.tx(durable=False) as s:
            serialize(s, "activities")
            decision = conflicts.status_in(s, activity_id, self.clock(), self._hardstop(s), heartbeat_s)
        if decision.status in ("paused", "queued"):
            self.audit.record("activity_" + decision.status, activity_id=activity_id, kind=decision.kind,
                              reasons=list(decision.reasons))
        return decision

    def end(self, activity_id: int) -> conflicts.ActivityDecision:
        with self.ledger.tx(durable=False) as s:
            serialize(s, "activities")
            decision = conflicts.end_in(s, activity_id, self.clock())
        self.audit.record("activity_end", activity_id=activity_id, kind=decision.kind,
                          affected=list(decision.affected), reasons=list(decision.reasons))
        return decision

    def may_run_stage(self, stage: str) -> GateDecision:
        """Whether a promotion stage may run now (COLD/WARM are paused by HARDSTOP)."""
        with self.ledger.read() as s:
            hardstop = self._hardstop(s)
        if hardstop and stage.lower() in conflicts.PAUSED_BY_HARDSTOP:
            return GateDecision(False, ("HARDSTOP is on: COLD/WARM paused, exits only",))
        return GateDecision(True, ())

    def settle(self, strategies: Sequence[str], seed: str) -> list[str]:
        """Order competing strategies for capital by the Sharpe bandit (best first)."""
        if len(strategies) < 2:
            return list(strategies)
        with self.ledger.read() as s:
            returns = {name: list(s.scalars(select(ClosedTrade.ret).where(
                ClosedTrade.account == self.account, ClosedTrade.strategy == name))) for name in set(strategies)}
        ranking = bandit.rank(returns, seed)
        self.audit.record("bandit", seed=seed, ranking=[{"strategy": n, "sampled_sharpe": round(v, 4),
                                                          "trades": len(returns[n])} for n, v in ranking])
        return [name for name, _ in ranking]

    def snapshot(self) -> dict[str, object]:
        """What the coordinator holds right now (for `nettrace status`)."""
        from sqlalchemy import func

        from nettrace_dagster.coordinator.models import (
            Activity,
            ApiWindow,
            ComputeSlot,
            Reservation,
            live_reservation,
        )
        now = self.clock()
        with self.ledger.read() as s:
            res = s.execute(select(Reservation.kind, func.count(), func.sum(Reservation.amount)).where(
                Reservation.account == self.account, live_reservation(now)).group_by(Reservation.kind)).all()
            slots = dict(s.execute(select(ComputeSlot.kind, func.count()).where(
                ComputeSlot.status == "held", ComputeSlot.expires_at > now).group_by(ComputeSlot.kind)).all())
            acts = [{"id": a.id, "kind": a.kind, "owner": a.owner, "status": a.status} for a in s.scalars(
                select(Activity).where(Activity.status != "done", Activity.expires_at > now))]
            minute = int(now // 60)
            calls = s.execute(select(ApiWindow.exchange, ApiWindow.minute, ApiWindow.calls).where(
                ApiWindow.minute > minute - 60)).all()
        api: dict[str, dict[str, int]] = {}
        for exchange, m, n in calls:
            entry = api.setdefault(exchange, {"minute": 0, "hour": 0})
            entry["hour"] += n
            entry["minute"] += n if m == minute else 0
        return {
            "reservations": {kind: {"count": n, "amount": float(total or 0)} for kind, n, total in res},
            "compute_slots": {kind: {"in_use": slots.get(kind, 0), "limit": limit} for kind, limit in self.quotas.items()},
            "activities": acts,
            "api_calls": {"limits": {"per_minute": self.api_limits[0], "per_hour": self.api_limits[1]}, **api},
        }

    @staticmethod
    def _hardstop(s) -> bool:  # noqa: ANN001
        return hardstop_on(s)
