"""The coordinator's tables, in the ledger database (one transaction can move money and hold
capital at once, and every process sees the same state)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nettrace_dagster.execution.models import Base

# Lower number = higher priority (exits > live > paper > backtests).
PRIORITIES: dict[str, int] = {"exit": 0, "live": 1, "paper": 2, "backtest": 3}


class Reservation(Base):
    """Capital held for an owner. Active while status is 'active' and not past `expires_at`
    (NULL: held until released, used for orders in flight)."""

    __tablename__ = "reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)  # active|released|consumed|preempted
    client_order_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def live_reservation(now: Any) -> Any:
    """The one statement of "a reservation that still holds capital": active, not past its TTL.
    `now` is a number or a bind parameter."""
    return (Reservation.status == "active") & (Reservation.expires_at.is_(None) | (Reservation.expires_at > now))


class ComputeSlot(Base):
    """A lease on one compute slot (3 backtests, 5 paper traders, live unlimited)."""

    __tablename__ = "compute_slots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # held | released
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class ApiWindow(Base):
    """Exchange API calls counted per exchange and UTC minute, shared by every process."""

    __tablename__ = "api_windows"
    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch // 60
    calls: Mapped[int] = mapped_column(Integer, default=0)


class Activity(Base):
    """Long-running work the conflict rules arbitrate (deploy, optimization, discovery, …)."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | queued | paused | done
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
