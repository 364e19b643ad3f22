"""The seed's conflict rules between long-running activities, decided in the ledger database.

- A deploy during an optimization queues the optimization: an optimization that asks to start
  while a deploy runs is queued, and one already running when a deploy starts is queued (it must
  not publish parameters mid-deploy). Queued optimizations resume when no deploy is running.
- One deploy at a time, and one trading tick per account (owner) at a time: a second is refused
  (never two drivers for one account).
- HARDSTOP pauses COLD and WARM (backtest and paper stages of promotion): they are refused at
  start and report "paused" when polled, and resume when HARDSTOP is off. Exits only.
An activity whose holder died expires by TTL; a trading tick's is ended at once by the next
holder of the account's process lock (`Coordinator.exclusive`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from nettrace_dagster.ledger.models import Activity

ACTIVITY_KINDS = ("deploy", "optimization", "discovery", "cold", "warm", "limited", "trading")
PAUSED_BY_HARDSTOP = ("cold", "warm")


@dataclass(frozen=True)
class ActivityDecision:
    status: str  # running | queued | paused | refused | done
    kind: str
    reasons: tuple[str, ...]
    activity_id: int | None = None
    affected: tuple[int, ...] = ()  # other activities this decision queued or resumed


def _running(s: Session, kind: str, now: float) -> list[Activity]:
    return list(s.scalars(select(Activity).where(Activity.kind == kind, Activity.status == "running",
                                                 Activity.expires_at > now)))


def begin_in(s: Session, kind: str, owner: str, now: float, ttl_s: float, hardstop: bool) -> ActivityDecision:
    if kind not in ACTIVITY_KINDS:
        raise ValueError(f"unknown activity {kind!r}; one of {', '.join(ACTIVITY_KINDS)}")
    deploys = _running(s, "deploy", now)
    status, reasons, affected = "running", [f"{kind} may start"], []
    if kind in PAUSED_BY_HARDSTOP and hardstop:
        return ActivityDecision("refused", kind, ("HARDSTOP is on: COLD/WARM paused, exits only",))
    if kind == "deploy" and deploys:
        return ActivityDecision("refused", kind, (f"deploy {deploys[0].id} ({deploys[0].owner}) is running",))
    if kind == "trading":
        same = [a for a in _running(s, "trading", now) if a.owner == owner]
        if same:
            return ActivityDecision("refused", kind, (f"{owner} is already trading (activity {same[0].id})",))
    if kind == "optimization" and deploys:
        status, reasons = "queued", [f"deploy {deploys[0].id} is running: optimization queued"]
    if kind == "deploy":
        for opt in _running(s, "optimization", now):
            opt.status, opt.note = "queued", f"queued by a deploy started by {owner}"
            affected.append(opt.id)
        if affected:
            reasons.append(f"optimization(s) {affected} queued until the deploy ends")
    activity = Activity(kind=kind, owner=owner, status=status, note="; ".join(reasons), created_at=now,
                        expires_at=now + ttl_s)
    s.add(activity)
    s.flush()
    return ActivityDecision(status, kind, tuple(reasons), activity.id, tuple(affected))


def reap_in(s: Session, kind: str, owner: str, now: float) -> list[int]:
    """End `owner`'s running activities of `kind`: called by a holder of the owner's process lock,
    which proves every other holder dead. Their ids."""
    dead = [a for a in _running(s, kind, now) if a.owner == owner]
    for act in dead:
        act.status, act.expires_at, act.note = "done", now, "holder died (its process lock was free)"
    return [a.id for a in dead]


def end_in(s: Session, activity_id: int, now: float) -> ActivityDecision:
    act = s.get(Activity, activity_id)
    if act is None:
        raise LookupError(f"no activity {activity_id}")
    act.status, act.expires_at = "done", now
    resumed: list[int] = []
    if act.kind == "deploy" and not _running(s, "deploy", now):
        for opt in s.scalars(select(Activity).where(Activity.kind == "optimization", Activity.status == "queued",
                                                    Activity.expires_at > now)):
            opt.status, opt.note = "running", "deploy ended: resumed"
            resumed.append(opt.id)
    reasons = ("finished",) + ((f"optimization(s) {resumed} resumed",) if resumed else ())
    return ActivityDecision("done", act.kind, reasons, act.id, tuple(resumed))
