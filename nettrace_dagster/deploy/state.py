"""Which release each region runs (and the one before it), and the deploy history (an audit log,
`deploy_history.jsonl`, queryable from DuckDB as `audit_deploy_history`)."""

from __future__ import annotations

import time
from typing import Any

from nettrace_dagster.audit import append_audit, read_audit
from nettrace_dagster.deploy import REGIONS
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.deploy_tables import RegionRelease
from nettrace_dagster.settings import Settings

HISTORY = "deploy_history"


def region_releases(ledger: Ledger) -> dict[str, dict[str, Any]]:
    with ledger.read() as s:
        rows = {r.region: {"region": r.region, "current": r.current, "previous": r.previous, "status": r.status,
                           "updated_at": r.updated_at} for r in s.query(RegionRelease).all()}
    return {r: rows.get(r, {"region": r, "current": None, "previous": None, "status": "empty", "updated_at": None})
            for r in REGIONS}


def set_region(ledger: Ledger, region: str, current: str | None, previous: str | None, status: str) -> None:
    with ledger.tx() as s:
        row = s.get(RegionRelease, region) or RegionRelease(region=region)
        row.current, row.previous, row.status, row.updated_at = current, previous, status, time.time()
        s.add(row)


def set_status(ledger: Ledger, region: str, status: str) -> None:
    with ledger.tx() as s:
        row = s.get(RegionRelease, region)
        if row is not None:
            row.status, row.updated_at = status, time.time()


def record(settings: Settings, event: str, release: str | None, stage: str, region: str | None, status: str,
           **fields: Any) -> dict[str, Any]:
    """One deploy event; every field a trader filters on is a top-level column."""
    return append_audit(settings.audit_dir, HISTORY, {"event": event, "release": release, "stage": stage,
                                                      "region": region, "status": status, **fields})


def history(settings: Settings, release: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    events = [{**e, "time": e.get("ts")} for e in read_audit(settings.audit_dir, HISTORY)
              if release is None or e.get("release") == release]
    return events[-limit:] if limit else events
