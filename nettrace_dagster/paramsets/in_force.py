"""The parameters in force: one source for the trader, the backtests and the UI.

The newest `ParamsInForce` row of the ledger is the set in force; with none, the defaults
(`schema.default_param_set`). Changing it (`activate_in`, `rollback_in`) happens inside the
caller's ledger transaction and stages one record for `param_optimization.jsonl` in the ledger's
audit outbox in that same transaction, so a change and its audit line are never separated;
`flush_outbox` appends the staged records after the commit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nettrace_dagster.audit import append_audit
from nettrace_dagster.ledger.db import Ledger, serialize
from nettrace_dagster.ledger.models import AuditOutbox
from nettrace_dagster.ledger.promotion_tables import ParamsInForce
from nettrace_dagster.paramsets.schema import default_param_set, dumps, param_set_id, validate_param_set

AUDIT_LOG = "param_optimization"


@dataclass(frozen=True)
class InForce:
    """The set in force. `id` None: nothing was promoted yet (the defaults)."""

    param_set: dict[str, Any]
    param_set_id: str
    id: int | None = None
    candidate_id: int | None = None
    previous_id: int | None = None
    activated_at: float | None = None
    kind: str = "default"
    strategy_files: dict[str, dict[str, str]] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)

    @property
    def strategies(self) -> dict[str, dict[str, Any]]:
        return {name: dict(p) for name, p in self.param_set["strategies"].items()}

    @property
    def portfolio(self) -> dict[str, float]:
        return dict(self.param_set["portfolio"])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "param_set_id": self.param_set_id, "kind": self.kind,
                "candidate_id": self.candidate_id, "previous_id": self.previous_id,
                "activated_at": self.activated_at, "param_set": self.param_set,
                "strategy_files": self.strategy_files}


def defaults() -> InForce:
    ps = default_param_set()
    return InForce(ps, param_set_id(ps))


def _of(row: ParamsInForce | None) -> InForce:
    if row is None:
        return defaults()
    return InForce(json.loads(row.param_set), row.param_set_id, row.id, row.candidate_id, row.previous_id,
                   row.activated_at, row.kind, json.loads(row.strategy_files or "{}"),
                   json.loads(row.baseline or "{}"))


def current_in(s: Session) -> InForce:
    return _of(s.scalars(select(ParamsInForce).order_by(ParamsInForce.id.desc()).limit(1)).first())


def current(ledger: Ledger) -> InForce:
    """The set in force now (defaults when none was promoted)."""
    with ledger.read() as s:
        return current_in(s)


def params_in_force(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Strategy name → the parameters it trades and is backtested with."""
    return current(ledger).strategies


def history(ledger: Ledger) -> list[InForce]:
    with ledger.read() as s:
        return [_of(r) for r in s.scalars(select(ParamsInForce).order_by(ParamsInForce.id))]


def activate_in(s: Session, param_set: dict[str, Any], *, by: str, reason: str, kind: str = "promote",
                candidate_id: int | None = None, strategy_files: dict[str, dict[str, str]] | None = None,
                baseline: dict[str, Any] | None = None, previous_id: int | None = -1,
                now: float | None = None) -> InForce:
    """Put `param_set` in force (inside the caller's transaction) and stage its audit record.
    `previous_id` -1: the set in force until now (what a rollback returns to)."""
    serialize(s, "params_in_force")
    now = time.time() if now is None else now
    checked = validate_param_set(param_set)
    before = current_in(s)
    prev = before.id if previous_id == -1 else previous_id
    row = ParamsInForce(param_set=dumps(checked), param_set_id=param_set_id(checked),
                        strategy_files=json.dumps(strategy_files or {}), candidate_id=candidate_id,
                        previous_id=prev, kind=kind, by=by, reason=reason,
                        baseline=json.dumps(baseline or {}), activated_at=now)
    s.add(row)
    s.flush()
    stage_audit(s, AUDIT_LOG, {"event": f"params_{kind}", "in_force_id": row.id, "param_set_id": row.param_set_id,
                               "replaced_param_set_id": before.param_set_id, "replaced_in_force_id": before.id,
                               "candidate_id": candidate_id, "by": by, "reason": reason,
                               "param_set": checked, "strategy_files": strategy_files or {}}, now)
    return _of(row)


class NothingToRollBack(RuntimeError):
    """The defaults are in force: there is no earlier set to return to."""


def rollback_in(s: Session, *, by: str, reason: str, now: float | None = None) -> tuple[InForce, InForce]:
    """Return to the set in force before the current one (the defaults if it was the first).
    (the set rolled back, the set now in force); NothingToRollBack when the defaults rule."""
    serialize(s, "params_in_force")
    cur = current_in(s)
    if cur.id is None:
        raise NothingToRollBack("no parameter set was promoted: the defaults are in force, nothing to roll back")
    target = _of(s.get(ParamsInForce, cur.previous_id)) if cur.previous_id is not None else defaults()
    if cur.previous_id is None and cur.param_set_id == target.param_set_id:
        raise NothingToRollBack("the defaults are in force again: there is no earlier set to roll back to")
    new = activate_in(s, target.param_set, by=by, reason=reason, kind="rollback",
                      candidate_id=target.candidate_id, strategy_files=target.strategy_files,
                      baseline=target.baseline, previous_id=target.previous_id, now=now)
    return cur, new


def stage_audit(s: Session, log: str, record: dict[str, Any], now: float) -> None:
    """An audit record written with the change it describes (see `flush_outbox`)."""
    s.add(AuditOutbox(log=log, record=json.dumps(record, default=str), created_at=now))


def flush_outbox(ledger: Ledger, audit_dir: Path | None) -> int:
    """Append staged audit records to their JSONL logs and delete them; the number still waiting
    (an unwritable audit folder leaves them in the ledger, as `RiskGate.flush_audit` does)."""
    if audit_dir is None:
        return 0
    with ledger.tx(durable=False) as s:
        rows = list(s.scalars(select(AuditOutbox).order_by(AuditOutbox.id).limit(1000)
                              .with_for_update(skip_locked=True)))
        for row in rows:
            try:
                append_audit(Path(audit_dir), row.log, {**json.loads(row.record), "outbox_id": row.id})
            except OSError:
                break
            s.delete(row)
    with ledger.read() as s:
        return len(list(s.scalars(select(AuditOutbox.id).limit(1000))))
