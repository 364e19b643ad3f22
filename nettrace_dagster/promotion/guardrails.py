"""Guardrails on the FULL set: roll it back to the set it replaced when, since it was put in force,
- the day's loss exceeds `max_daily_loss_usd` (PARAM_OPT_MAX_DAILY_LOSS_USD, $5): equity now
  against the higher of the equity at activation (if that was today, UTC) and the day's start;
- its Sharpe drops more than `max_sharpe_drop` (30 %) below the Sharpe of the set it replaced:
  both are mark-to-mark Sharpe ratios of the account's equity (the replaced set's over the marks
  before activation, recorded at activation), judged once `guard_min_marks` marks exist since;
  "drops more than 30 %" is current < baseline − 0.30 × |baseline|;
- its drawdown from the peak equity since activation exceeds `max_drawdown` (8 %).
Only a set the pipeline promoted is guarded (after a rollback, the restored set is the operator's
to judge: no cascade of rollbacks). Each rollback is audited (`param_optimization.jsonl`,
`promotion_log.jsonl`) and raises a P1 alert.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.ledger.models import Capital, EquityMark
from nettrace_dagster.ledger.promotion_tables import Candidate
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion import store
from nettrace_dagster.promotion.alerts import alert_p1
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.promotion.pipeline import account_sharpe_in


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def check(ledger: Ledger, config: PromotionConfig, account: str = "main",
          now: float | None = None) -> dict[str, Any]:
    """{"guarded": bool, "in_force_id", "triggers": [why, …], "figures": {...}}; no change made."""
    now = time.time() if now is None else now
    cur = in_force.current(ledger)
    out: dict[str, Any] = {"guarded": cur.kind == "promote", "in_force_id": cur.id, "triggers": [], "figures": {}}
    if not out["guarded"]:
        return out
    base = cur.baseline
    activated = float(cur.activated_at or now)
    with ledger.read() as s:
        cap = s.get(Capital, account)
        if cap is None:
            return out
        equity = cap.last_equity
        start = cap.day_start_equity if cap.day == _day(now) else equity
        at = base.get("equity_at_activation")
        ref = max(start, at) if at is not None and _day(activated) == _day(now) else start
        peak = s.scalar(select(func.max(EquityMark.equity)).where(EquityMark.account == account,
                                                                  EquityMark.ts >= activated))
        sharpe, n = account_sharpe_in(s, account, since=activated)
    peak = max(float(peak or equity), float(at or equity), equity)
    loss, drawdown = ref - equity, 1.0 - equity / peak if peak > 0 else 0.0
    b_sharpe = float(base.get("sharpe", 0.0))
    out["figures"] = {"day_loss": loss, "drawdown": drawdown, "sharpe": sharpe, "marks": n,
                      "baseline_sharpe": b_sharpe, "equity": equity, "peak": peak}
    if loss > config.max_daily_loss_usd:
        out["triggers"].append(f"day's loss ${loss:.2f} > ${config.max_daily_loss_usd:.2f}")
    if n >= config.guard_min_marks and sharpe < b_sharpe - config.max_sharpe_drop * abs(b_sharpe):
        out["triggers"].append(f"Sharpe {sharpe:.3f} dropped more than {config.max_sharpe_drop:.0%} below the "
                               f"replaced set's {b_sharpe:.3f}")
    if drawdown > config.max_drawdown:
        out["triggers"].append(f"drawdown {drawdown:.1%} > {config.max_drawdown:.0%} since it was put in force")
    return out


def rollback(ledger: Ledger, *, by: str, reason: str, audit_dir: Path | str | None = None,
             expected_in_force_id: int | None = None, now: float | None = None) -> dict[str, Any]:
    """Put the previous set back in force (audited, P1 alert); the FULL candidate → ROLLED_BACK.
    With `expected_in_force_id`, nothing happens if another change came first (idempotent runs)."""
    now = time.time() if now is None else now
    with ledger.tx() as s:
        cur = in_force.current_in(s)
        if expected_in_force_id is not None and cur.id != expected_in_force_id:
            return {"rolled_back": False, "reason": f"set {expected_in_force_id} is no longer in force (now {cur.id})"}
        old, new = in_force.rollback_in(s, by=by, reason=reason, now=now)
        if old.candidate_id is not None:
            c = s.get(Candidate, old.candidate_id)
            if c is not None and c.stage == "FULL":
                store.move_in(s, c, "ROLLED_BACK", "rollback", by, reason, {"in_force_id": new.id}, now)
        restored = s.get(Candidate, new.candidate_id) if new.candidate_id is not None else None
        if restored is not None and restored.stage == "RETIRED":
            store.move_in(s, restored, "FULL", "restore", by, f"restored by rollback: {reason}", {}, now)
    in_force.flush_outbox(ledger, Path(audit_dir) if audit_dir is not None else None)
    text = (f"parameter set {old.param_set_id} (in force #{old.id}) rolled back to {new.param_set_id} by {by}: "
            f"{reason}")
    alert_p1("parameters rolled back", text, Path(audit_dir) if audit_dir is not None else None)
    return {"rolled_back": True, "from": old.to_dict(), "to": new.to_dict(), "by": by, "reason": reason}
