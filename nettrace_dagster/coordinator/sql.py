"""Two ways to run the reservation statements: through a SQLAlchemy `Connection` (any database),
or straight on the pysqlite connection with the statements compiled once (SQLite's hot path).

The statements themselves are SQLAlchemy expressions defined once in `reservations.py`; only the
executor differs. On SQLite the raw path skips SQLAlchemy's per-execution machinery, which shortens
the time the write lock is held — what other processes wait for.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

_DIALECT = sqlite.dialect(paramstyle="qmark")
_COMPILED: dict[int, tuple[str, tuple[str, ...], dict[str, Any]]] = {}


class Sql(Protocol):
    dialect: str

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

    def run(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        """Execute; the new row id for an INSERT, else the row count."""
        ...


class CoreSql:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.dialect = conn, conn.dialect.name

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(stmt, params)]

    def run(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        result = self.conn.execute(stmt, params)
        if result.is_insert:
            return int(result.inserted_primary_key[0])
        return int(result.rowcount or 0)


class RawSqlite:
    """A pysqlite connection inside a transaction the caller began (BEGIN IMMEDIATE)."""

    dialect = "sqlite"

    def __init__(self, dbapi_conn: Any) -> None:
        self.cur = dbapi_conn.cursor()

    @staticmethod
    def _args(stmt: ClauseElement, params: dict[str, Any]) -> tuple[str, list[Any]]:
        hit = _COMPILED.get(id(stmt))
        if hit is None:  # statements are module constants: compile each once per process
            c = stmt.compile(dialect=_DIALECT)
            # literals in the expression (e.g. `status == "active"`) are bound parameters too
            hit = _COMPILED[id(stmt)] = (str(c), tuple(c.positiontup or ()), dict(c.params))
        sql, names, defaults = hit
        return sql, [params[n] if n in params else defaults[n] for n in names]

    def rows(self, stmt: ClauseElement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        sql, args = self._args(stmt, params)
        return self.cur.execute(sql, args).fetchall()

    def run(self, stmt: ClauseElement, params: dict[str, Any]) -> int:
        sql, args = self._args(stmt, params)
        self.cur.execute(sql, args)
        return int(self.cur.lastrowid) if sql.lstrip().upper().startswith("INSERT") else int(self.cur.rowcount)
