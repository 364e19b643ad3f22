"""Every table of the ledger (SQLAlchemy 2 typed ORM): money state that must survive a crash, and
the coordinator's and the trader's state beside it (one transaction can move money and hold
capital at once, and every process sees the same state).

Times are UTC epoch seconds (floats): portable between SQLite and PostgreSQL and cheap to
compare. Amounts are USD (quote currency) and base-asset quantities as doubles; they are rounded to
the exchange's precision at the broker edge (15 significant digits are ample for both).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Order states. "intent" is written *before* the broker is called; "unknown" means the call's
# outcome is not known (timeout) until reconciliation asks the broker by client order id.
OPEN_STATES = ("intent", "unknown", "open", "partially_filled")
FINAL_STATES = ("filled", "canceled", "expired", "rejected")


class Base(DeclarativeBase):
    pass


class Capital(Base):
    """One row per account: the cash and the Rule 1 / Rule 3 bookkeeping."""

    __tablename__ = "capital"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    # paper | live: money of one mode never mixes with the other's (a live engine refuses a paper row)
    mode: Mapped[str] = mapped_column(String(8), default="paper", server_default="paper")
    principal: Mapped[float] = mapped_column(Float)  # paid in
    cash: Mapped[float] = mapped_column(Float)
    peak_equity: Mapped[float] = mapped_column(Float)
    day: Mapped[str] = mapped_column(String(10))  # UTC date of day_start_equity
    day_start_equity: Mapped[float] = mapped_column(Float)
    last_equity: Mapped[float] = mapped_column(Float)
    locked_profit: Mapped[float] = mapped_column(Float, default=0.0)
    principal_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[float] = mapped_column(Float)


class Flag(Base):
    """Persisted switches; `hardstop` is the one that matters."""

    __tablename__ = "flags"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    on: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[float] = mapped_column(Float)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    strategy: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    kind: Mapped[str] = mapped_column(String(8))  # entry | exit
    mode: Mapped[str] = mapped_column(String(8))  # paper | live
    broker: Mapped[str] = mapped_column(String(32))
    qty: Mapped[float] = mapped_column(Float)
    price_ref: Mapped[float] = mapped_column(Float)
    notional: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: the decision's reasons
    filled_qty: Mapped[float] = mapped_column(Float, default=0.0)
    filled_quote: Mapped[float] = mapped_column(Float, default=0.0)  # Σ qty × price
    fee: Mapped[float] = mapped_column(Float, default=0.0)  # valued in quote, base-asset fees included
    fee_base: Mapped[float] = mapped_column(Float, default=0.0)  # units of base withheld as fee
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reservation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # The signal bar's time (epoch ms): when, in market time, the order was decided (NULL: an
    # order written before NetTrace recorded it, or one not tied to a bar).
    bar_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    @property
    def avg_price(self) -> float:
        return self.filled_quote / self.filled_qty if self.filled_qty > 0 else 0.0


class Fill(Base):
    __tablename__ = "fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    fill_key: Mapped[str] = mapped_column(String(96), unique=True)  # makes applying a fill idempotent
    qty: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    realised: Mapped[float] = mapped_column(Float, default=0.0)
    ts: Mapped[float] = mapped_column(Float)


class Position(Base):
    """A strategy's long spot position in one symbol (the wallet is shared, attribution is not)."""

    __tablename__ = "positions"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(128), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    qty: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)  # cash paid for the open qty, fees included
    mark_price: Mapped[float] = mapped_column(Float, default=0.0)
    realised_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    trip_pnl: Mapped[float] = mapped_column(Float, default=0.0)  # realised within the open round trip
    trip_cost: Mapped[float] = mapped_column(Float, default=0.0)  # cash put in during the round trip
    updated_at: Mapped[float] = mapped_column(Float)


class ClosedTrade(Base):
    """A finished round trip: what Rule 2's win rate and Rule 3's fire/clone count."""

    __tablename__ = "closed_trades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(128), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    pnl: Mapped[float] = mapped_column(Float)
    ret: Mapped[float] = mapped_column(Float)  # pnl / cost of the round trip
    client_order_id: Mapped[str] = mapped_column(String(36))
    closed_at: Mapped[float] = mapped_column(Float)


class ProfitLock(Base):
    """The non-reinvested share of a realised profit (Rule 3), and the principal lock (Rule 1)."""

    __tablename__ = "profit_locks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))  # client order id, or "principal"
    realised: Mapped[float] = mapped_column(Float)
    locked: Mapped[float] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float)


class EquityMark(Base):
    __tablename__ = "equity_marks"
    __table_args__ = (UniqueConstraint("account", "ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    ts: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    positions_value: Mapped[float] = mapped_column(Float)
    drawdown: Mapped[float] = mapped_column(Float)
    daily_pnl: Mapped[float] = mapped_column(Float)
    hardstop: Mapped[bool] = mapped_column(Boolean, default=False)


class StrategyState(Base):
    """Rule 3's verdicts, per account: fired strategies may not open trades there; clones are
    recorded for the promotion pipeline to pick up."""

    __tablename__ = "strategy_states"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # active | fired | cloned
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float] = mapped_column(Float)


class PaperOrder(Base):
    """The paper broker's own venue book (a separate table, as a real exchange is a separate
    system): the ledger never writes it, so reconciliation can ask it like an exchange."""

    __tablename__ = "paper_orders"
    client_order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    exchange_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Float)
    filled_qty: Mapped[float] = mapped_column(Float)
    avg_price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Float)


class AuditOutbox(Base):
    """Audit records written in the same transaction as the money change they describe, then
    appended to their JSONL log and deleted (`RiskGate.flush_audit`). A full disk or an unwritable
    audit folder therefore never blocks an order or the kill switch, and never loses a record:
    it waits here until the log can be written."""

    __tablename__ = "audit_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log: Mapped[str] = mapped_column(String(64))
    record: Mapped[str] = mapped_column(Text)  # JSON object
    created_at: Mapped[float] = mapped_column(Float)


# --- the coordinator's state: capital held, API calls counted, activities arbitrated ---------------
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


# --- the trader's cursor ------------------------------------------------------------------------
class TraderCursor(Base):
    """The last bar (epoch ms) the trader acted on, per account and symbol: a bar is traded once."""

    __tablename__ = "trader_cursors"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_bar_ms: Mapped[int] = mapped_column(BigInteger)


# Tables of the other concerns, each in its own module on this Base (imported here so that
# `Base.metadata` is whole wherever the ledger is opened).
from nettrace_dagster.ledger import deploy_tables, promotion_tables, review_tables  # noqa: E402,F401,I001
