"""Ledger tables of the deploy pillar: releases (immutable), which release each region runs (and
the one before it, for rollback), the releases put in force (what the deploy sensor follows), and
the driver lease a primary execution node holds on its account (so `trading_tick` stands down)."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nettrace_dagster.ledger.models import Base


class Release(Base):
    """One release: strategy code hashes + parameter set + rules version. `content` is canonical
    JSON and `release_id` is derived from it, so a row is never updated: same content, same id."""

    __tablename__ = "releases"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Float)


class ReleaseInForce(Base):
    """Append-only: a release was put in force (by `nettrace release create`, or by the promotion
    pipeline at FULL). The deploy sensor deploys the newest one it has not seen."""

    __tablename__ = "releases_in_force"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(String(40), index=True)
    by: Mapped[str] = mapped_column(String(128), default="")
    at: Mapped[float] = mapped_column(Float)


class RegionRelease(Base):
    """The release a region runs now and the one before it (what a rollback returns to)."""

    __tablename__ = "region_releases"
    region: Mapped[str] = mapped_column(String(8), primary_key=True)
    current: Mapped[str | None] = mapped_column(String(40), nullable=True)
    previous: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | rolled_back | failed
    updated_at: Mapped[float] = mapped_column(Float)


class DriverLease(Base):
    """Who drives an account's trading loop right now: a node renews it every loop; expired means
    nobody (the `trading_tick` sensor may drive again)."""

    __tablename__ = "driver_leases"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)
