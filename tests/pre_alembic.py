"""A ledger as NetTrace wrote it before Alembic: the baseline revision's tables, no alembic_version.

Tables added by later revisions never existed in such a ledger; tests that make one from today's
models drop them too, or the adoption would meet tables no old NetTrace ever wrote.
"""

from __future__ import annotations

import importlib.util

from sqlalchemy import Table

from nettrace_dagster.ledger import migrate
from nettrace_dagster.ledger.models import Base


def baseline_table_names() -> list[str]:
    path = migrate.MIGRATIONS_DIR / "versions" / "0001_baseline.py"
    spec = importlib.util.spec_from_file_location("nettrace_ledger_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.TABLES)


def baseline_tables() -> list[Table]:
    """Today's models of the baseline's tables (what `create_all` made before Alembic)."""
    names = set(baseline_table_names())
    return [t for t in Base.metadata.sorted_tables if t.name in names]


def later_table_names() -> list[str]:
    """Tables of revisions after the baseline, children first (safe to drop in this order)."""
    names = set(baseline_table_names())
    return [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in names]
