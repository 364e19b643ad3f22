"""PostgreSQL for tests and benchmarks: a scratch database on 127.0.0.1:5432, dropped afterwards.

The project's machines run PostgreSQL there with trust auth (FACTS.md). The role is PGUSER, else
`postgres`, else `root`. Whether the server is *there* is decided by a TCP probe, not by reading
psycopg's error text: a server that is absent skips the tests that need it (locally) or fails them
(in CI, where it always runs); a server that answers but refuses us is always a failure.

Fixtures (registered for the whole suite by tests/conftest.py): `pg_database`, one scratch
database per test session; `pg_url`, a fresh schema in it per test, as a SQLAlchemy URL. Tests
that use either are marked `postgres` automatically.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

# Imported here, once: pytester restores sys.modules, and a second import of psycopg would not
# match the exception classes its C extension raises.
try:
    import psycopg
except ImportError:  # the `dev` extra is missing; reported when a test needs PostgreSQL
    psycopg = None

HOST, PORT = "127.0.0.1", 5432
CONNECT_TIMEOUT_S = 3
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


class PostgresUnavailable(RuntimeError):
    """Nothing answers on 127.0.0.1:5432 (or psycopg is not installed); one line."""


def in_ci() -> bool:
    """CI sets CI=true; there every service is present, so a skip would hide a failure."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def server_answers(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout):
            return True
    except OSError:
        return False


def candidate_users() -> list[str]:
    return list(dict.fromkeys([os.environ.get("PGUSER") or "postgres", "root"]))


def connect_admin(dbname: str = "postgres") -> tuple[Any, str]:
    """(autocommit psycopg connection, role) for the first role the server accepts.
    PostgresUnavailable when the server is absent; psycopg's own error when it refuses every role."""
    if psycopg is None:
        raise PostgresUnavailable("psycopg is not installed (the `dev` extra)")
    if not server_answers():
        raise PostgresUnavailable(f"PostgreSQL is not answering on {HOST}:{PORT} (start it: {START_HINT})")
    refused: list[str] = []
    for user in candidate_users():
        try:
            conn = psycopg.connect(host=HOST, port=PORT, user=user, dbname=dbname,
                                   connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.OperationalError as exc:
            refused.append(f"{user}: {str(exc).strip().splitlines()[0]}")
            continue
        return conn, user
    raise psycopg.OperationalError(f"PostgreSQL on {HOST}:{PORT} refused every role tried ({'; '.join(refused)})")


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    user: str

    def url(self, schema: str | None = None) -> str:
        """SQLAlchemy URL (the ledger maps `postgresql://` to psycopg), optionally pinned to a schema."""
        url = f"postgresql://{self.user}@{HOST}:{PORT}/{self.name}"
        return url + (f"?options=-csearch_path%3D{schema}" if schema else "")

    def connect(self) -> Any:
        return psycopg.connect(host=HOST, port=PORT, user=self.user, dbname=self.name,
                               connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)

    @contextmanager
    def schema(self, prefix: str = "nt") -> Iterator[str]:
        """A fresh schema, dropped with everything in it afterwards."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
            try:
                yield name
            finally:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def scratch_database(prefix: str = "nettrace_test") -> Iterator[ScratchDatabase]:
    """A new database, dropped afterwards even if connections to it are still open (a crashed
    worker process, an engine not disposed): FORCE ends them rather than leaving it behind."""
    admin, user = connect_admin()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        _drop_orphans(admin, prefix)
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ScratchDatabase(name, user)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_orphans(admin: Any, prefix: str) -> None:
    """Drop scratch databases left by sessions that were killed before their teardown (the
    server is on loopback, so their creator's pid is a process on this machine)."""
    rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}\\_%",)).fetchall()
    for (name,) in rows:
        pid = name[len(prefix) + 1:].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@pytest.fixture(scope="session")
def pg_database() -> Iterator[ScratchDatabase]:
    """One scratch database for the test session. Skipped, with the reason, when PostgreSQL is
    absent — except in CI, where that is a failure."""
    try:
        with scratch_database() as db:
            yield db
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc}; CI runs the PostgreSQL tests for real", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def pg_url(pg_database: ScratchDatabase) -> Iterator[str]:
    """A fresh schema in the session's scratch database, as a SQLAlchemy URL; dropped afterwards."""
    with pg_database.schema() as schema:
        yield pg_database.url(schema)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m postgres` / `-m "not postgres"` select every test that needs the server, marked or not.
    for item in items:
        if "pg_database" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
