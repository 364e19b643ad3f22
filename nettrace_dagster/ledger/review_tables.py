"""The manual review queue of strategies that passed validation with warnings."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nettrace_dagster.ledger.models import Base

REVIEW_STATES = ("pending", "approved", "rejected")


class StrategyReview(Base):
    """One strategy file (by content hash) waiting for, or decided by, a person. A decision is
    final: the same content is never queued twice, and who decided, when and why stays here
    (and in the `strategy_reviews` audit log)."""

    __tablename__ = "strategy_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    opportunity_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    warnings: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: why it needs a person
    report: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the validation report
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    created_at: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
