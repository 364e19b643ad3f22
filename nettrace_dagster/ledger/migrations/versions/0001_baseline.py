"""baseline: the ledger as NetTrace made it before Alembic

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Today's schema, written out (never read from the models, which move on). It also adopts a ledger
made before NetTrace used Alembic (no alembic_version table): only the missing tables are created,
and the older shapes are brought up with every row kept:
- accounts gained a mode (they were all paper);
- orders gained the bar time they were decided on (NULL for the orders written before);
- Rule 3's verdicts became per account (a verdict made before applied to every account, so each
  account keeps it).
This is the only revision that looks at what exists; later ones are plain steps.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    _adopt_older_shapes(existing)
    for name, create in TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _adopt_older_shapes(existing: set[str]) -> None:
    if "capital" in existing and "mode" not in _columns("capital"):
        op.add_column("capital", sa.Column("mode", sa.String(length=8), server_default="paper", nullable=False))
    if "orders" in existing and "bar_ms" not in _columns("orders"):
        op.add_column("orders", sa.Column("bar_ms", sa.BigInteger(), nullable=True))
    if "strategy_states" in existing and "account" not in _columns("strategy_states"):
        op.rename_table("strategy_states", "strategy_states_v1")
        _strategy_states()
        op.execute("INSERT INTO strategy_states (account, strategy, status, reason, updated_at) "
                   "SELECT c.account, s.strategy, s.status, s.reason, s.updated_at "
                   "FROM strategy_states_v1 s CROSS JOIN capital c")
        op.drop_table("strategy_states_v1")


def _activities() -> None:
    op.create_table('activities',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_activities_kind'), 'activities', ['kind'], unique=False)
    op.create_index(op.f('ix_activities_status'), 'activities', ['status'], unique=False)


def _api_windows() -> None:
    op.create_table('api_windows',
        sa.Column('exchange', sa.String(length=32), nullable=False),
        sa.Column('minute', sa.Integer(), nullable=False),
        sa.Column('calls', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('exchange', 'minute')
    )


def _audit_outbox() -> None:
    op.create_table('audit_outbox',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('log', sa.String(length=64), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )


def _capital() -> None:
    op.create_table('capital',
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=8), server_default='paper', nullable=False),
        sa.Column('principal', sa.Float(), nullable=False),
        sa.Column('cash', sa.Float(), nullable=False),
        sa.Column('peak_equity', sa.Float(), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('day_start_equity', sa.Float(), nullable=False),
        sa.Column('last_equity', sa.Float(), nullable=False),
        sa.Column('locked_profit', sa.Float(), nullable=False),
        sa.Column('principal_locked', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('account')
    )


def _closed_trades() -> None:
    op.create_table('closed_trades',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('strategy', sa.String(length=128), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('pnl', sa.Float(), nullable=False),
        sa.Column('ret', sa.Float(), nullable=False),
        sa.Column('client_order_id', sa.String(length=36), nullable=False),
        sa.Column('closed_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_closed_trades_strategy'), 'closed_trades', ['strategy'], unique=False)


def _equity_marks() -> None:
    op.create_table('equity_marks',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('ts', sa.Float(), nullable=False),
        sa.Column('equity', sa.Float(), nullable=False),
        sa.Column('cash', sa.Float(), nullable=False),
        sa.Column('positions_value', sa.Float(), nullable=False),
        sa.Column('drawdown', sa.Float(), nullable=False),
        sa.Column('daily_pnl', sa.Float(), nullable=False),
        sa.Column('hardstop', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('account', 'ts')
    )
    op.create_index(op.f('ix_equity_marks_account'), 'equity_marks', ['account'], unique=False)


def _flags() -> None:
    op.create_table('flags',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('on', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name')
    )


def _orders() -> None:
    op.create_table('orders',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('client_order_id', sa.String(length=36), nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('strategy', sa.String(length=128), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('mode', sa.String(length=8), nullable=False),
        sa.Column('broker', sa.String(length=32), nullable=False),
        sa.Column('qty', sa.Float(), nullable=False),
        sa.Column('price_ref', sa.Float(), nullable=False),
        sa.Column('notional', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reasons', sa.Text(), nullable=False),
        sa.Column('filled_qty', sa.Float(), nullable=False),
        sa.Column('filled_quote', sa.Float(), nullable=False),
        sa.Column('fee', sa.Float(), nullable=False),
        sa.Column('fee_base', sa.Float(), nullable=False),
        sa.Column('exchange_order_id', sa.String(length=64), nullable=True),
        sa.Column('reservation_id', sa.Integer(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('bar_ms', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('client_order_id')
    )
    op.create_index(op.f('ix_orders_account'), 'orders', ['account'], unique=False)
    op.create_index(op.f('ix_orders_status'), 'orders', ['status'], unique=False)


def _paper_orders() -> None:
    op.create_table('paper_orders',
        sa.Column('client_order_id', sa.String(length=36), nullable=False),
        sa.Column('exchange_order_id', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=False),
        sa.Column('qty', sa.Float(), nullable=False),
        sa.Column('filled_qty', sa.Float(), nullable=False),
        sa.Column('avg_price', sa.Float(), nullable=False),
        sa.Column('fee', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('ts', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('client_order_id')
    )


def _positions() -> None:
    op.create_table('positions',
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('strategy', sa.String(length=128), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('qty', sa.Float(), nullable=False),
        sa.Column('cost', sa.Float(), nullable=False),
        sa.Column('mark_price', sa.Float(), nullable=False),
        sa.Column('realised_pnl', sa.Float(), nullable=False),
        sa.Column('trip_pnl', sa.Float(), nullable=False),
        sa.Column('trip_cost', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('account', 'strategy', 'symbol')
    )


def _profit_locks() -> None:
    op.create_table('profit_locks',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('realised', sa.Float(), nullable=False),
        sa.Column('locked', sa.Float(), nullable=False),
        sa.Column('ts', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )


def _reservations() -> None:
    op.create_table('reservations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('client_order_id', sa.String(length=36), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_reservations_account'), 'reservations', ['account'], unique=False)
    op.create_index(op.f('ix_reservations_status'), 'reservations', ['status'], unique=False)


def _strategy_states() -> None:
    op.create_table('strategy_states',
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('strategy', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('account', 'strategy')
    )


def _trader_cursors() -> None:
    op.create_table('trader_cursors',
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('symbol', sa.String(length=32), nullable=False),
        sa.Column('last_bar_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('account', 'symbol')
    )


def _fills() -> None:
    op.create_table('fills',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('fill_key', sa.String(length=96), nullable=False),
        sa.Column('qty', sa.Float(), nullable=False),
        sa.Column('price', sa.Float(), nullable=False),
        sa.Column('fee', sa.Float(), nullable=False),
        sa.Column('realised', sa.Float(), nullable=False),
        sa.Column('ts', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('fill_key')
    )
    op.create_index(op.f('ix_fills_order_id'), 'fills', ['order_id'], unique=False)


TABLES: dict[str, Callable[[], None]] = {
    "activities": _activities,
    "api_windows": _api_windows,
    "audit_outbox": _audit_outbox,
    "capital": _capital,
    "closed_trades": _closed_trades,
    "equity_marks": _equity_marks,
    "flags": _flags,
    "orders": _orders,
    "paper_orders": _paper_orders,
    "positions": _positions,
    "profit_locks": _profit_locks,
    "reservations": _reservations,
    "strategy_states": _strategy_states,
    "trader_cursors": _trader_cursors,
    "fills": _fills,
}
