"""Promotion state: candidates and their stage history, the parameter sets in force, and the
exit-rule state (take-profit tiers, trailing stop) of each sleeve's positions.

Every stage change of a candidate is one `CandidateDecision` row written in the same transaction
as the stage itself (who, when, why, the evidence), so the history can never disagree with the
stage. `ParamsInForce` is append-only: the newest row is the set in force; promoting appends one,
rolling back appends a copy of the one before (its `previous_id` walks further back).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nettrace_dagster.ledger.models import Base

STAGES = ("COLD", "WARM", "LIMITED", "FULL", "REJECTED", "RETIRED", "ROLLED_BACK")
ACTIVE_STAGES = ("COLD", "WARM", "LIMITED")
KINDS = ("params", "strategy", "both")


class Candidate(Base):
    """A parameter set, a generated strategy, or both, on its way COLD → WARM → LIMITED → FULL."""

    __tablename__ = "promotion_candidates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))  # params | strategy | both
    param_set: Mapped[str] = mapped_column(Text)  # JSON: the whole set it would put in force
    param_set_id: Mapped[str] = mapped_column(String(64), index=True)
    strategy_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    strategy_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    strategy_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    regime: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(128), default="")
    stage: Mapped[str] = mapped_column(String(16), index=True)
    stage_started_at: Mapped[float] = mapped_column(Float)
    evidence: Mapped[str] = mapped_column(Text, default="{}")  # JSON: stage -> its evidence
    waiting_approval: Mapped[bool] = mapped_column(default=False)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class CandidateDecision(Base):
    """One stage change (or approval) of a candidate: the audit trail, in the ledger."""

    __tablename__ = "promotion_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(Integer, index=True)
    from_stage: Mapped[str] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(32))  # enter | pass | fail | approve | reject | rollback …
    by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    ts: Mapped[float] = mapped_column(Float)


class ParamsInForce(Base):
    """The parameter sets put in force, newest last (append-only)."""

    __tablename__ = "params_in_force"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    param_set: Mapped[str] = mapped_column(Text)  # JSON
    param_set_id: Mapped[str] = mapped_column(String(64))
    strategy_files: Mapped[str] = mapped_column(Text, default="{}")  # JSON: name -> {path, sha256}
    candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # what a rollback returns to
    kind: Mapped[str] = mapped_column(String(16))  # promote | rollback
    by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    baseline: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the replaced set's figures (guardrails)
    activated_at: Mapped[float] = mapped_column(Float)


class ExitRuleState(Base):
    """Per sleeve position: what the take-profit tiers and the trailing stop need between ticks."""

    __tablename__ = "exit_rule_states"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(128), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    entry_price: Mapped[float] = mapped_column(Float)
    units: Mapped[float] = mapped_column(Float)  # bought at entry: tiers sell fractions of these
    peak: Mapped[float] = mapped_column(Float)  # highest high of the bars before this one since entry
    tiers_done: Mapped[int] = mapped_column(Integer, default=0)  # tiers already sold (0..3)
    last_bar_ms: Mapped[int] = mapped_column(BigInteger, default=0)
