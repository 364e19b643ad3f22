"""Positions as the ledger holds them, in the shape a node reports them (for reconciliation), and
the driver lease a primary node holds on its account."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.deploy_tables import DriverLease
from nettrace_dagster.ledger.models import Position

QTY_TOLERANCE = 1e-9


def ledger_positions(ledger: Ledger, account: str) -> dict[tuple[str, str], float]:
    with ledger.read() as s:
        return {(p.strategy, p.symbol): float(p.qty) for p in s.scalars(
            select(Position).where(Position.account == account, Position.qty > QTY_TOLERANCE))}


def as_map(positions: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    return {(str(p["strategy"]), str(p["symbol"])): float(p["qty"]) for p in positions
            if float(p.get("qty", 0)) > QTY_TOLERANCE}


def position_differences(node: dict[tuple[str, str], float], ledger: dict[tuple[str, str], float]) -> list[str]:
    """Where a node's book and the ledger disagree (empty: they agree), one line each."""
    out = []
    for key in sorted(set(node) | set(ledger)):
        a, b = node.get(key, 0.0), ledger.get(key, 0.0)
        if abs(a - b) > max(QTY_TOLERANCE, 1e-6 * max(abs(a), abs(b))):
            out.append(f"{key[0]}/{key[1]}: node {a:g}, ledger {b:g}")
    return out


def renew_lease(ledger: Ledger, account: str, holder: str, ttl_s: float) -> None:
    now = time.time()
    with ledger.tx(durable=False) as s:
        lease = s.get(DriverLease, account)
        if lease is None:
            s.add(DriverLease(account=account, holder=holder, expires_at=now + ttl_s))
        else:
            lease.holder, lease.expires_at = holder, now + ttl_s


def release_lease(ledger: Ledger, account: str, holder: str) -> None:
    with ledger.tx(durable=False) as s:
        lease = s.get(DriverLease, account)
        if lease is not None and lease.holder == holder:
            lease.expires_at = time.time()


def driver_of(ledger: Ledger, account: str) -> str | None:
    """The node driving `account` now (its lease unexpired), or None."""
    with ledger.read() as s:
        lease = s.get(DriverLease, account)
        return lease.holder if lease is not None and lease.expires_at > time.time() else None
