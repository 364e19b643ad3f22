"""The trader's own ledger table: how far each symbol's bars have been traded."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from nettrace_dagster.execution.models import Base


class TraderCursor(Base):
    """The last bar (epoch ms) the trader acted on, per account and symbol: a bar is traded once."""

    __tablename__ = "trader_cursors"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_bar_ms: Mapped[int] = mapped_column(BigInteger)
