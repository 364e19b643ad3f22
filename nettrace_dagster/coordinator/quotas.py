"""Compute quotas: at most 3 backtests and 5 paper traders at once; live trading is unlimited.

Two layers, because two kinds of things run:
- Dagster runs are limited by Dagster itself: jobs tag their runs with `run_tags(kind)` and the
  instance's run coordinator carries `RUN_TAG_LIMITS` (`dagster.yaml`:
  `run_queue: {tag_concurrency_limits: [...]}`), so excess runs wait in the queue, not fail.
- Anything else (nodes, scripts, steps inside one run) leases a slot in the ledger here; a lease
  expires by TTL, so a killed holder frees its slot without anyone's help.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nettrace_dagster.coordinator.models import ComputeSlot

COMPUTE_QUOTAS: dict[str, int | None] = {"backtest": 3, "paper": 5, "live": None}
RUN_TAG_KEY = "nettrace/compute"
RUN_TAG_LIMITS: list[dict[str, object]] = [
    {"key": RUN_TAG_KEY, "value": kind, "limit": limit} for kind, limit in COMPUTE_QUOTAS.items() if limit]


def run_tags(kind: str) -> dict[str, str]:
    """Tags that put a Dagster job's runs under the `kind` quota."""
    if kind not in COMPUTE_QUOTAS:
        raise ValueError(f"unknown compute kind {kind!r}; one of {', '.join(COMPUTE_QUOTAS)}")
    return {RUN_TAG_KEY: kind}


@dataclass(frozen=True)
class SlotResult:
    granted: bool
    kind: str
    reasons: tuple[str, ...]
    slot_id: int | None = None
    in_use: int = 0


def acquire_slot_in(s: Session, kind: str, owner: str, now: float, ttl_s: float,
                    quotas: dict[str, int | None] = COMPUTE_QUOTAS) -> SlotResult:
    if kind not in quotas:
        raise ValueError(f"unknown compute kind {kind!r}; one of {', '.join(quotas)}")
    limit = quotas[kind]
    in_use = int(s.scalar(select(func.count()).where(
        ComputeSlot.kind == kind, ComputeSlot.status == "held", ComputeSlot.expires_at > now)) or 0)
    if limit is not None and in_use >= limit:
        return SlotResult(False, kind, (f"{in_use} of {limit} {kind} slot(s) in use: wait",), in_use=in_use)
    slot = ComputeSlot(kind=kind, owner=owner, status="held", acquired_at=now, expires_at=now + ttl_s)
    s.add(slot)
    s.flush()
    cap = "unlimited" if limit is None else f"{in_use + 1} of {limit}"
    return SlotResult(True, kind, (f"{kind} slot granted ({cap})",), slot.id, in_use + 1)


def release_slot_in(s: Session, slot_id: int) -> bool:
    slot = s.get(ComputeSlot, slot_id)
    if slot is None or slot.status != "held":
        return False
    slot.status = "released"
    return True
