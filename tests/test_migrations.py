"""The ledger's Alembic migrations, on SQLite and PostgreSQL: a fresh ledger, one made before
Alembic (today's tables, no alembic_version) and one of the older shapes all open at the head
revision with every row kept, and the migrated schema equals the models (`compare_metadata` is
empty) — the test that catches a model change shipped without its revision."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, String, Table, create_engine, text

from nettrace_dagster.ledger import migrate
from nettrace_dagster.ledger.db import Ledger, LedgerError
from nettrace_dagster.ledger.models import Base
from tests.pre_alembic import baseline_tables

ROOT = Path(__file__).resolve().parents[1]

# The tables as the release before per-account verdicts, modes and bar times created them.
OLD_SHAPES = [
    "CREATE TABLE capital (account VARCHAR(64) NOT NULL, principal FLOAT NOT NULL, cash FLOAT NOT NULL, "
    "peak_equity FLOAT NOT NULL, day VARCHAR(10) NOT NULL, day_start_equity FLOAT NOT NULL, "
    "last_equity FLOAT NOT NULL, locked_profit FLOAT NOT NULL, principal_locked BOOLEAN NOT NULL, "
    "updated_at FLOAT NOT NULL, PRIMARY KEY (account))",
    "CREATE TABLE strategy_states (strategy VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL, "
    "reason TEXT NOT NULL, updated_at FLOAT NOT NULL, PRIMARY KEY (strategy))",
    "CREATE TABLE orders (id INTEGER NOT NULL, client_order_id VARCHAR(36) NOT NULL, account VARCHAR(64) NOT NULL, "
    "strategy VARCHAR(128) NOT NULL, symbol VARCHAR(32) NOT NULL, side VARCHAR(4) NOT NULL, kind VARCHAR(8) NOT NULL, "
    "mode VARCHAR(8) NOT NULL, broker VARCHAR(32) NOT NULL, qty FLOAT NOT NULL, price_ref FLOAT NOT NULL, "
    "notional FLOAT NOT NULL, status VARCHAR(16) NOT NULL, reasons TEXT NOT NULL, filled_qty FLOAT NOT NULL, "
    "filled_quote FLOAT NOT NULL, fee FLOAT NOT NULL, fee_base FLOAT NOT NULL, exchange_order_id VARCHAR(64), "
    "reservation_id INTEGER, attempts INTEGER NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, "
    "PRIMARY KEY (id), UNIQUE (client_order_id))",
    "CREATE INDEX ix_orders_account ON orders (account)",
    "CREATE INDEX ix_orders_status ON orders (status)",
    "INSERT INTO capital VALUES ('main', 100, 87.5, 120, '2026-11-30', 95, 90, 3, false, 1.0)",
    "INSERT INTO capital VALUES ('other', 50, 50, 50, '2026-11-30', 50, 50, 0, false, 1.0)",
    "INSERT INTO strategy_states VALUES ('momentum', 'fired', 'fire: 10 trades (Rule 3)', 1.0)",
    "INSERT INTO orders VALUES (1, 'coid-1', 'main', 'momentum', 'BTC-USDT', 'buy', 'entry', 'paper', 'paper', "
    "0.1, 100, 10, 'filled', '[]', 0.1, 10, 0.01, 0, NULL, NULL, 1, 1.0, 1.0)",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def execute(url: str, statements: list[str]) -> None:
    engine = create_engine(_driver(url))
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))
    engine.dispose()


def _driver(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def schema_of(ledger: Ledger) -> tuple[str | None, list]:
    with ledger.engine.connect() as conn:
        return migrate.current(conn), migrate.differences(conn)


def test_a_fresh_ledger_is_at_the_head_and_equals_the_models(url: str) -> None:
    ledger = Ledger(url)
    assert ledger.schema_migrated == (None, migrate.head())
    assert schema_of(ledger) == (migrate.head(), [])
    again = Ledger(url)  # at the head: nothing to apply
    assert again.schema_migrated == (migrate.head(), migrate.head())
    ledger.dispose()
    again.dispose()


def test_an_older_ledger_upgrades_in_place_keeping_every_row(url: str) -> None:
    execute(url, OLD_SHAPES)
    ledger = Ledger(url)
    assert ledger.schema_migrated == (None, migrate.head())
    assert schema_of(ledger) == (migrate.head(), [])
    with ledger.read() as s:
        capital = s.execute(text("SELECT account, mode, cash FROM capital ORDER BY account")).all()
        verdicts = s.execute(text("SELECT account, strategy, status FROM strategy_states ORDER BY account")).all()
        orders = s.execute(text("SELECT client_order_id, bar_ms, filled_qty FROM orders")).all()
    assert [tuple(r) for r in capital] == [("main", "paper", 87.5), ("other", "paper", 50.0)]
    assert [tuple(r) for r in verdicts] == [("main", "momentum", "fired"), ("other", "momentum", "fired")]
    assert [tuple(r) for r in orders] == [("coid-1", None, 0.1)]
    ledger.dispose()


def test_a_ledger_made_before_alembic_is_adopted(url: str) -> None:
    """The baseline's tables made by `create_all` (what NetTrace did before), with no alembic_version."""
    engine = create_engine(_driver(url))
    Base.metadata.create_all(engine, tables=baseline_tables())
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO flags (name, \"on\", reason, updated_by, updated_at) "
                          "VALUES ('hardstop', true, 'operator', 'me', 1.0)"))
    engine.dispose()
    ledger = Ledger(url)
    assert ledger.schema_migrated == (None, migrate.head())
    assert schema_of(ledger) == (migrate.head(), [])
    with ledger.read() as s:
        assert s.execute(text("SELECT name, reason FROM flags")).all() == [("hardstop", "operator")]
    ledger.dispose()


def test_a_ledger_from_a_newer_nettrace_is_refused_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).dispose()
    execute(url, ["UPDATE alembic_version SET version_num = '9999'"])
    with pytest.raises(LedgerError, match="revision 9999, which this NetTrace does not know") as err:
        Ledger(url)
    assert "\n" not in str(err.value)
    env = {"NETTRACE_HOME": str(tmp_path / "home"), "NETTRACE_LEDGER_URL": url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", "import sys; from nettrace_dagster.cli import main; sys.exit(main())",
                          "migrate"], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "newer NetTrace" in out.stderr


@pytest.fixture
def scratch_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the packaged migrations to write a revision into (the source tree stays as it is)."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    migrate.script.cache_clear()
    yield copy
    migrate.script.cache_clear()


@pytest.fixture
def new_table() -> Iterator[Table]:
    """A table a future module adds to the models (as `ledger/<area>_tables.py` will)."""
    table = Table("promo_trials", Base.metadata, Column("id", Integer, primary_key=True),
                  Column("name", String(64), nullable=False, index=True))
    yield table
    Base.metadata.remove(table)


def test_a_new_table_without_its_revision_is_caught_and_new_writes_it(
        tmp_path: Path, scratch_migrations: Path, new_table: Table) -> None:
    old = f"sqlite:///{tmp_path / 'old.db'}"
    Ledger(old).dispose()  # a user's ledger at today's head (the baseline never reads the models)
    engine = create_engine(old)
    with engine.connect() as conn:  # the forgotten migration: the models have a table the schema lacks
        assert [d[0] for d in migrate.differences(conn)] == ["add_table", "add_index"]
    engine.dispose()

    head = migrate.head()
    following = f"{int(head) + 1:04d}"
    path = migrate.new_revision("promo trials")
    assert path.name == f"{following}_promo_trials.py" and path.parent == scratch_migrations / "versions"
    assert "op.create_table('promo_trials'" in path.read_text()
    ledger = Ledger(old)  # the user's ledger takes the new revision when it is next opened
    assert ledger.schema_migrated == (head, following)
    assert schema_of(ledger) == (following, [])
    ledger.dispose()
    with pytest.raises(migrate.MigrationError, match="nothing to write"):
        migrate.new_revision("again")


def test_the_wheel_ships_every_migration_file() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "nettrace_dagster"]
    package = ROOT / "nettrace_dagster"
    files = [p.relative_to(package).as_posix() for p in migrate.MIGRATIONS_DIR.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert "ledger/migrations/versions/0001_baseline.py" in files and "ledger/migrations/env.py" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []


def test_the_alembic_environment_runs_from_the_command_line(tmp_path: Path) -> None:
    """`alembic` itself (what a user might reach for) works through the packaged env.py."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = migrate.config()
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        from alembic import command

        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        assert migrate.differences(conn) == []
    engine.dispose()


def test_migrate_check_fails_on_a_model_change_without_its_revision(
        scratch_migrations: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.cli import main

    assert main(["migrate", "--check"]) == 0
    table = Table("promo_trials", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        capsys.readouterr()
        assert main(["migrate", "--check"]) == 1
        out = capsys.readouterr().out
        assert "1 model change(s) without a revision" in out and "promo_trials" in out
    finally:
        Base.metadata.remove(table)


def _open(url: str) -> tuple[str | None, str] | None:
    ledger = Ledger(url)
    ledger.dispose()
    return ledger.schema_migrated


def test_processes_opening_an_old_ledger_at_once_migrate_it_once(tmp_path: Path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    execute(url, OLD_SHAPES)
    # spawn, not fork: a fork of a process with threads (Dagster's, the optimizer's pool) can inherit a
    # lock another thread held and hang; fresh interpreters open the ledger as real processes do.
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_open, [url] * 4)
    assert sorted(results, key=str) == sorted([(None, migrate.head())] + [(migrate.head(), migrate.head())] * 3,
                                              key=str), results
    ledger = Ledger(url)
    with ledger.read() as s:
        assert s.execute(text("SELECT count(*) FROM strategy_states")).scalar() == 2
    ledger.dispose()
