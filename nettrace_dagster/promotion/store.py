"""Candidates in the ledger: submitting, moving between stages, listing. Every change is one
transaction that writes the stage, a `CandidateDecision` row (who, when, why, evidence) and a
`promotion_log.jsonl` record staged in the ledger's audit outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nettrace_dagster.ledger.db import serialize
from nettrace_dagster.ledger.promotion_tables import KINDS, STAGES, Candidate, CandidateDecision
from nettrace_dagster.paramsets.in_force import stage_audit
from nettrace_dagster.paramsets.schema import dumps, param_set_id, validate_param_set

AUDIT_LOG = "promotion_log"


class CandidateError(ValueError):
    """No such candidate, or a decision its stage does not allow (one line)."""


@dataclass(frozen=True)
class CandidateView:
    id: int
    kind: str
    stage: str
    regime: str
    source: str
    param_set_id: str
    param_set: dict[str, Any]
    strategy: dict[str, str] | None
    stage_started_at: float
    evidence: dict[str, Any]
    waiting_approval: bool
    approved_by: str | None
    history: list[dict[str, Any]]

    @property
    def stages(self) -> list[str]:
        """The stages it went through, in order (COLD first)."""
        out: list[str] = []
        for h in self.history:
            for st in (h["from"], h["to"]):
                if st in STAGES and (not out or out[-1] != st):
                    out.append(st)
        return out or [self.stage]

    @property
    def strategy_files(self) -> dict[str, dict[str, str]]:
        s = self.strategy
        return {s["name"]: {"path": s["path"], "sha256": s["sha256"]}} if s else {}

    def failed_tests(self) -> list[str]:
        return [str(t) for t in self.evidence.get("gate", {}).get("failed_tests", [])]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "stage": self.stage, "regime": self.regime,
                "source": self.source, "param_set_id": self.param_set_id, "strategy": self.strategy,
                "stage_started_at": self.stage_started_at, "waiting_approval": self.waiting_approval,
                "approved_by": self.approved_by, "stages": self.stages, "evidence": self.evidence,
                "failed_tests": self.failed_tests(), "history": self.history, "param_set": self.param_set}


def view_in(s: Session, c: Candidate) -> CandidateView:
    history = [{"from": d.from_stage, "to": d.to_stage, "decision": d.decision, "by": d.by, "reason": d.reason,
                "ts": d.ts} for d in s.scalars(select(CandidateDecision).where(
                    CandidateDecision.candidate_id == c.id).order_by(CandidateDecision.id))]
    strategy = ({"name": c.strategy_name, "path": c.strategy_path or "", "sha256": c.strategy_sha256 or ""}
                if c.strategy_name else None)
    return CandidateView(c.id, c.kind, c.stage, c.regime, c.source, c.param_set_id, json.loads(c.param_set),
                         strategy, c.stage_started_at, json.loads(c.evidence or "{}"), bool(c.waiting_approval),
                         c.approved_by, history)


def get_in(s: Session, candidate_id: int, *, lock: bool = False) -> Candidate:
    q = select(Candidate).where(Candidate.id == candidate_id)
    c = s.scalars(q.with_for_update() if lock else q).one_or_none()
    if c is None:
        raise CandidateError(f"no candidate {candidate_id}")
    return c


def submit_in(s: Session, param_set: dict[str, Any], *, now: float, regime: str = "", source: str = "",
              strategy: dict[str, str] | None = None, gate: dict[str, Any] | None = None,
              by: str = "pipeline", kind: str | None = None) -> tuple[Candidate, bool]:
    """A new candidate: COLD if its gate passed, REJECTED (with the gate's failed tests) if not.
    The same parameter set and strategy file submitted again is the existing candidate (False)."""
    serialize(s, "promotion_candidates")
    checked = validate_param_set(param_set)
    pid = param_set_id(checked)
    sha = (strategy or {}).get("sha256")
    existing = s.scalars(select(Candidate).where(Candidate.param_set_id == pid,
                                                 Candidate.strategy_sha256.is_(None) if sha is None
                                                 else Candidate.strategy_sha256 == sha)).first()
    if existing is not None:
        return existing, False
    kind = kind or ("strategy" if strategy else "params")
    if kind not in KINDS or (kind != "params") != bool(strategy):
        raise CandidateError(f"candidate kind {kind!r}: params (no strategy file), strategy or both (with one)")
    gate = dict(gate or {"passed": True, "failed_tests": []})
    passed = bool(gate.get("passed"))
    c = Candidate(kind=kind, param_set=dumps(checked), param_set_id=pid, regime=regime, source=source,
                  strategy_name=(strategy or {}).get("name"), strategy_path=(strategy or {}).get("path"),
                  strategy_sha256=sha, stage="COLD" if passed else "REJECTED", stage_started_at=now,
                  evidence=json.dumps({"gate": gate}, default=str), waiting_approval=False,
                  created_at=now, updated_at=now)
    s.add(c)
    s.flush()
    reason = "overfitting gate passed" if passed else "overfitting gate failed: " + ", ".join(
        str(t) for t in gate.get("failed_tests", []))
    _decide(s, c, "NEW", c.stage, "enter" if passed else "fail", by, reason, {"gate": gate}, now)
    return c, True


def move_in(s: Session, c: Candidate, to: str, decision: str, by: str, reason: str, evidence: dict[str, Any],
            now: float, evidence_key: str | None = None) -> None:
    """Change the stage (or record a decision that keeps it, e.g. an approval) with its history row."""
    if to not in STAGES:
        raise CandidateError(f"unknown stage {to!r}")
    frm = c.stage
    if evidence_key:
        stored = json.loads(c.evidence or "{}")
        stored[evidence_key] = evidence
        c.evidence = json.dumps(stored, default=str)
    if to != frm:
        c.stage, c.stage_started_at = to, now
    c.updated_at = now
    _decide(s, c, frm, to, decision, by, reason, evidence, now)


def _decide(s: Session, c: Candidate, frm: str, to: str, decision: str, by: str, reason: str,
            evidence: dict[str, Any], now: float) -> None:
    s.add(CandidateDecision(candidate_id=c.id, from_stage=frm, to_stage=to, decision=decision, by=by,
                            reason=reason, evidence=json.dumps(evidence, default=str), ts=now))
    stage_audit(s, AUDIT_LOG, {"event": "candidate_" + decision, "candidate_id": c.id, "from": frm, "to": to,
                               "by": by, "reason": reason, "evidence": evidence, "param_set_id": c.param_set_id,
                               "decided_at": now}, now)


def list_in(s: Session, stages: tuple[str, ...] | None = None) -> list[CandidateView]:
    q = select(Candidate).order_by(Candidate.id)
    if stages:
        q = q.where(Candidate.stage.in_(stages))
    return [view_in(s, c) for c in s.scalars(q)]
