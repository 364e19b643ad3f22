"""`Coordinator`: the one arbiter of the exchange API budget, of conflicting activities (one
trading tick per account, deploys and optimizations, HARDSTOP pausing COLD/WARM) and of entries
competing for capital (the Sharpe bandit), for every process.

Each method is one short ledger transaction followed by one audit line in `conflict_log.jsonl`.
Capital itself is held by the orders in flight (`reservations.reserve_in`, inside the engine's
transaction); compute quotas are Dagster's run queue (`quotas.py`).
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
from nettrace_dagster.ledger.accounting import hardstop_on
from nettrace_dagster.ledger.db import Ledger, serialize
from nettrace_dagster.ledger.models import ClosedTrade


class Coordinator:
    def __init__(self, ledger: Ledger, audit_dir: Path | str | None = None, account: str = "main",
                 api_limits: tuple[int, int] = (PER_MINUTE, PER_HOUR), clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ledger, self.account = ledger, account
        self.audit = AuditSink(audit_dir)
        self.api_limits = api_limits
        self.clock, self.sleep = clock, sleep

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

    def end(self, activity_id: int) -> conflicts.ActivityDecision:
        with self.ledger.tx(durable=False) as s:
            serialize(s, "activities")
            decision = conflicts.end_in(s, activity_id, self.clock())
        self.audit.record("activity_end", activity_id=activity_id, kind=decision.kind,
                          affected=list(decision.affected), reasons=list(decision.reasons))
        return decision

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

        from nettrace_dagster.ledger.models import (
            Activity,
            ApiWindow,
                        Reservation,
            live_reservation,
        )
        now = self.clock()
        with self.ledger.read() as s:
            res = s.execute(select(Reservation.kind, func.count(), func.sum(Reservation.amount)).where(
                Reservation.account == self.account, live_reservation(now)).group_by(Reservation.kind)).all()
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
            # enforced by Dagster's run queue (tag concurrency limits), not here: see quotas.py
            "compute_slots": {kind: {"limit": limit} for kind, limit in quotas.COMPUTE_QUOTAS.items()},
            "activities": acts,
            "api_calls": {"limits": {"per_minute": self.api_limits[0], "per_hour": self.api_limits[1]}, **api},
        }

    @staticmethod
    def _hardstop(s) -> bool:  # noqa: ANN001
        return hardstop_on(s)
