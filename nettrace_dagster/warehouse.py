"""DuckDB analytics over the lake and the audit logs — read-only.

The warehouse is views, not a database file: every connection is an in-memory DuckDB with one
view per lake asset (`read_parquet` over its files; a partitioned asset's partition key, from the
file name, is its first column: `symbol` for the symbol-partitioned candles and regimes) and one per
audit log (`audit_<name>` over its JSONL). DuckDB allows one read-write process per database
file (FACTS.md); an in-memory connection holds no file lock, so any number of concurrent Dagster
runs, steps and CLI calls query the same data without ever waiting on or failing with a lock.

Queries only read, enforced twice, because SQL reaches the files behind the views:
1. `check_read_only` parses the query with DuckDB's own parser and accepts one SELECT (WITH,
   FROM, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN of one) whose syntax tree holds no other kind of
   query — DuckDB parses `WITH x AS (COPY … TO 'file') SELECT …` as a SELECT, and runs the COPY —
   and no function that runs SQL handed to it as data (`json_execute_serialized_sql`).
2. The connection cannot write whatever the SQL says: DuckDB's own file access is switched off
   (`enable_external_access = false`, configuration locked, no extension installs or loads, which
   would fetch code over the network), and the lake and the audit logs are reached only through
   `ntlake://` and `ntaudit://`, two fsspec filesystems that can open a file for reading and for
   nothing else. A check that misses a trick still cannot touch a byte on disk.
A lake file that is not a whole Parquet file (a crash of some other tool, a truncated copy) is
left out of its view with a warning naming it, so one bad partition never breaks every query.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import polars as pl
from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch
_PARQUET_MAGIC = b"PAR1"
# Query nodes a read may contain; anything else in the tree (INSERT_QUERY_NODE, COPY_QUERY_NODE,
# UPDATE_…, DELETE_…, whatever a later DuckDB adds) makes the query a write.
_READ_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# Functions that run SQL given to them as a value, out of the check's sight (`query` is safe:
# DuckDB accepts only a plain SELECT there and refuses a COPY inside it).
_SQL_RUNNERS = frozenset({"json_execute_serialized_sql"})
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)
# The column a partitioned asset's view names its partition key by (from the file name, which wins
# over a column of the same name inside the file). Every partitioned asset today is partitioned by
# symbol, so every view says `symbol`; an asset partitioned by something else names its own here.
PARTITION_COLUMNS: dict[str, str] = {"raw_opportunities": "source"}  # one file per discovery source
SYMBOL_COLUMN = "symbol"
READ_ONLY = "the warehouse is read-only: give one SELECT (or WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"


class WarehouseError(ValueError):
    """A query the warehouse refuses or cannot run; one line."""


class _ReadOnlyFolder(AbstractFileSystem):
    """One folder, seen by DuckDB as `<protocol>://relative/path`, that can only be read.

    Writes fail by construction: `_open` refuses every mode but "rb", and the base class's other
    mutating operations (rm, cp, mv) are not implemented, or are no-ops (mkdir) on a filesystem
    that cannot create anything. Paths are confined to the folder (no `..` out of it).
    """

    cachable = False
    root_marker = ""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = str(root)

    def local(self, path: str) -> str:
        rel = self._strip_protocol(path).lstrip("/")
        full = os.path.normpath(os.path.join(self.root, rel))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise PermissionError(f"{path}: outside {self.protocol}://")
        return full

    def url(self, local: str) -> str:
        return f"{self.protocol}://{os.path.relpath(local, self.root)}"

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        st = os.stat(self.local(path))
        kind = "directory" if os.path.isdir(self.local(path)) else "file"
        return {"name": self._strip_protocol(path), "size": st.st_size, "type": kind, "mtime": st.st_mtime}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        folder = self.local(path)
        if not os.path.isdir(folder):
            return [self.info(path)] if detail else [self._strip_protocol(path)]
        names = [self._strip_protocol(self.url(os.path.join(folder, n))) for n in sorted(os.listdir(folder))]
        return [self.info(n) for n in names] if detail else names

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(os.stat(self.local(path)).st_mtime, UTC)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        if mode != "rb":
            raise PermissionError(f"{path}: the warehouse is read-only")
        return open(self.local(path), "rb")  # noqa: SIM115 - the caller (DuckDB) closes it


class _LakeFolder(_ReadOnlyFolder):
    protocol = "ntlake"


class _AuditFolder(_ReadOnlyFolder):
    protocol = "ntaudit"


class Warehouse:
    def __init__(self, lake_dir: Path, audit_dir: Path, warn: Callable[[str], None] | None = None) -> None:
        self.lake_dir, self.audit_dir = Path(lake_dir).resolve(), Path(audit_dir).resolve()
        self.warn = warn or log.warning
        self._lake, self._audit = _LakeFolder(self.lake_dir), _AuditFolder(self.audit_dir)

    def views(self) -> dict[str, str]:
        """View name → the SQL source it reads."""
        views: dict[str, str] = {}
        if self.lake_dir.is_dir():
            for folder in sorted(p for p in self.lake_dir.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)):
                files = self._readable(sorted(f for f in folder.glob("*.parquet") if not f.name.startswith(".")))
                if files:
                    listed = "[" + ", ".join(_quote(self._lake.url(str(f))) for f in files) + "]"
                    key = PARTITION_COLUMNS.get(folder.name, SYMBOL_COLUMN)
                    views[folder.name] = (
                        f"SELECT regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS {key}, "
                        f"COLUMNS(lambda c: c NOT IN ('filename', {_quote(key)})) "
                        f"FROM read_parquet({listed}, filename = true, union_by_name = true)")
            for file in self._readable(sorted(self.lake_dir.glob("*.parquet"))):
                if _NAME.fullmatch(file.stem):
                    views[file.stem] = f"SELECT * FROM read_parquet({_quote(self._lake.url(str(file)))})"
        if self.audit_dir.is_dir():
            for file in sorted(self.audit_dir.glob("*.jsonl")):
                if _NAME.fullmatch(file.stem) and file.is_file() and file.stat().st_size:
                    views[f"audit_{file.stem}"] = (
                        f"SELECT * FROM read_json_auto({_quote(self._audit.url(str(file)))}, "
                        f"format = 'newline_delimited', "
                        f"ignore_errors = true)")
        return views

    def _readable(self, files: list[Path]) -> list[Path]:
        good = []
        for file in files:
            problem = parquet_problem(file)
            if problem:
                self.warn(f"skipping {file}: {problem}")
            else:
                good.append(file)
        return good

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection with the views, locked so it cannot write files or load code."""
        con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                 "autoload_known_extensions": False})
        try:
            for folder in (self._lake, self._audit):
                con.register_filesystem(folder)
            for name, source in self.views().items():
                con.execute(f'CREATE VIEW "{name}" AS {source}')
            # Only the read-only filesystems stay reachable; the local disk, http and every
            # other DuckDB filesystem do not.
            allowed = ", ".join(_quote(f"{folder.protocol}://") for folder in (self._lake, self._audit))
            con.execute(f"SET allowed_directories = [{allowed}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """The result of one read-only query; WarehouseError (one line) for anything else."""
        with self.connect() as con:
            check_read_only(sql, con)
            try:
                return con.sql(sql, params=params).pl()
            except (duckdb.Error, pl.exceptions.PolarsError) as exc:  # polars: a type it cannot hold
                raise WarehouseError(_first_line(exc)) from None


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """WarehouseError unless `sql` is exactly one statement that only reads."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise WarehouseError(_first_line(exc)) from None
    if len(statements) != 1:
        raise WarehouseError(f"{READ_ONLY}; got {len(statements) or 'no'} statements")
    statement = statements[0]
    if statement.type == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE runs its statement: what it explains must be a read too.
        inner = _EXPLAIN.sub("", sql, count=1)
        if inner == sql:
            raise WarehouseError(f"{READ_ONLY}; write EXPLAIN first, without a comment before it")
        check_read_only(inner, con)
        return
    if statement.type != duckdb.StatementType.SELECT:
        raise WarehouseError(f"{READ_ONLY}; {statement.type.name} statements are refused")
    own = con is None
    con = duckdb.connect(":memory:") if con is None else con
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    finally:
        if own:
            con.close()
    if tree.get("error"):
        raise WarehouseError(f"cannot check that the query only reads ({tree.get('error_message', 'unknown')}); "
                             f"{READ_ONLY}")
    nodes = list(_walk(tree))
    writes = sorted({kind for kind, _ in nodes if kind.endswith("_NODE") and kind not in _READ_NODES})
    if writes:
        kinds = ", ".join(n.removesuffix("_QUERY_NODE").removesuffix("_NODE") for n in writes)
        raise WarehouseError(f"{READ_ONLY}; the query contains {kinds}")
    runners = sorted({name for _, name in nodes if name.lower() in _SQL_RUNNERS})
    if runners:
        raise WarehouseError(f"{READ_ONLY}; {', '.join(runners)}() is refused")


def _walk(tree: Any) -> Iterator[tuple[str, str]]:
    """(type, function name) of every node in DuckDB's JSON syntax tree."""
    if isinstance(tree, dict):
        kind, name = tree.get("type"), tree.get("function_name")
        yield (kind if isinstance(kind, str) else "", name if isinstance(name, str) else "")
        for value in tree.values():
            yield from _walk(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _walk(value)


def parquet_problem(path: Path) -> str | None:
    """Why `path` is not a whole Parquet file (None: it looks whole). Reads 12 bytes, not the data:
    a Parquet file starts with PAR1 and ends with its footer length and PAR1, and a truncated or
    overwritten file loses that tail first."""
    try:
        if not path.is_file():
            return "not a regular file"
        size = path.stat().st_size
        if size < 12:
            return f"{size} bytes is too short for Parquet (truncated?)"
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(-8, 2)
            tail = fh.read(8)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if head != _PARQUET_MAGIC or tail[4:] != _PARQUET_MAGIC:
        return "not a whole Parquet file (truncated or overwritten?)"
    if int.from_bytes(tail[:4], "little") + 12 > size:
        return "its footer points past the end of the file (truncated?)"
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and "Traceback" in lines[0]:
        return lines[-1]  # a Python error inside DuckDB (our filesystems): its last line says what
    return lines[0] if lines else type(exc).__name__


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
