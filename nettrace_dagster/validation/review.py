"""The manual review queue (the design's "warnings → manual review").

A strategy that passed all six layers with warnings is queued here by content hash. A person
approves or rejects it (`nettrace review approve|reject ID`, or the `review_approval` job from the
Dagster UI); the decision — who, when, why — is stored on the row and appended to the
`strategy_reviews` audit log. Approving re-checks the file: it must still exist with the content
that was reviewed. An approved strategy is treated like a validated one downstream (a COLD
candidate); a rejected one stays rejected.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nettrace_dagster.audit import append_audit
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.ledger.review_tables import StrategyReview
from nettrace_dagster.settings import Settings
from nettrace_dagster.validation.report import ValidationReport

AUDIT_LOG = "strategy_reviews"
DECISIONS = {"approve": "approved", "reject": "rejected"}


class ReviewError(ValueError):
    """A review that cannot be decided as asked (unknown id, already decided, file changed)."""


def as_dict(row: StrategyReview) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "path": row.path, "sha256": row.sha256,
            "opportunity_id": row.opportunity_id, "status": row.status, "warnings": json.loads(row.warnings),
            "created_at": row.created_at, "decided_at": row.decided_at, "decided_by": row.decided_by,
            "reason": row.reason}


def submit_for_review(settings: Settings, report: ValidationReport, *, name: str, path: str,
                      opportunity_id: str | None = None) -> dict[str, Any]:
    """Queue `report`'s file (idempotent by content hash: the same content keeps its one row and
    its decision)."""
    ledger = ledger_of(settings)
    with ledger.tx() as session:
        row = session.scalars(select(StrategyReview).where(StrategyReview.sha256 == report.sha256)).first()
        if row is not None:
            return as_dict(row)
        row = StrategyReview(sha256=report.sha256, name=name[:128], path=str(path), opportunity_id=opportunity_id,
                             warnings=json.dumps(report.warnings), report=report.to_json(), status="pending",
                             created_at=time.time())
        session.add(row)
        session.flush()
        out = as_dict(row)
    append_audit(settings.audit_dir, AUDIT_LOG, {"event": "queued", "id": out["id"], "name": out["name"],
                                                "sha256": out["sha256"], "warnings": out["warnings"], "by": "validation"})
    return out


def list_reviews(settings: Settings, status: str | None = None) -> list[dict[str, Any]]:
    with ledger_of(settings).read() as session:
        query = select(StrategyReview).order_by(StrategyReview.id)
        if status is not None:
            query = query.where(StrategyReview.status == status)
        return [as_dict(row) for row in session.scalars(query)]


def review_by_hash(settings: Settings, sha256: str) -> dict[str, Any] | None:
    with ledger_of(settings).read() as session:
        row = session.scalars(select(StrategyReview).where(StrategyReview.sha256 == sha256)).first()
        return as_dict(row) if row is not None else None


def decide(settings: Settings, review_id: int, decision: str, *, by: str, reason: str = "") -> dict[str, Any]:
    """Approve or reject a pending review; ReviewError (nothing changes) when it cannot be."""
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be approve or reject, not {decision!r}")
    if decision == "reject" and not reason.strip():
        raise ReviewError("a rejection needs a reason (--reason)")
    by = by.strip() or "unknown"
    with ledger_of(settings).tx() as session:
        row = session.get(StrategyReview, review_id)
        if row is None:
            raise ReviewError(f"no review #{review_id} (see `nettrace review`)")
        if row.status != "pending":
            raise ReviewError(f"review #{review_id} was already {row.status} by {row.decided_by or '?'}")
        if decision == "approve":
            _check_unchanged(row)
        row.status, row.decided_by, row.reason, row.decided_at = DECISIONS[decision], by[:128], reason, time.time()
        out = as_dict(row)
    append_audit(settings.audit_dir, AUDIT_LOG, {"event": out["status"], "id": review_id, "name": out["name"],
                                                "sha256": out["sha256"], "by": out["decided_by"], "reason": reason})
    return out


def _check_unchanged(row: StrategyReview) -> None:
    """Approve what was reviewed: the file must still hold the same bytes."""
    path = Path(row.path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ReviewError(f"review #{row.id}: {path} is gone; it cannot be approved") from None
    if digest != row.sha256:
        raise ReviewError(f"review #{row.id}: {path} changed since it was validated; validate it again")
