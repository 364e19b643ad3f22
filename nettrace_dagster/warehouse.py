"""DuckDB analytics over the lake and the audit logs.

The warehouse is views, not a database file: every connection is an in-memory DuckDB with one
view per lake asset (`read_parquet` over its files, with the partition as a column) and one per
audit log (`audit_<name>` over its JSONL). DuckDB allows one read-write process per database
file (FACTS.md); an in-memory connection holds no file lock, so any number of concurrent Dagster
runs, steps and CLI calls query the same data without ever waiting on or failing with a lock.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Warehouse:
    def __init__(self, lake_dir: Path, audit_dir: Path) -> None:
        self.lake_dir, self.audit_dir = Path(lake_dir), Path(audit_dir)

    def views(self) -> dict[str, str]:
        """View name → the SQL source it reads."""
        views: dict[str, str] = {}
        if self.lake_dir.is_dir():
            for folder in sorted(p for p in self.lake_dir.iterdir() if p.is_dir() and _NAME.match(p.name)):
                if any(folder.glob("*.parquet")):
                    glob = _quote(str(folder / "*.parquet"))
                    views[folder.name] = (
                        f"SELECT regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS partition, * "
                        f"EXCLUDE (filename) FROM read_parquet({glob}, filename = true, union_by_name = true)")
            for file in sorted(self.lake_dir.glob("*.parquet")):
                if _NAME.match(file.stem):
                    views[file.stem] = f"SELECT * FROM read_parquet({_quote(str(file))})"
        if self.audit_dir.is_dir():
            for file in sorted(self.audit_dir.glob("*.jsonl")):
                if _NAME.match(file.stem) and file.stat().st_size:
                    views[f"audit_{file.stem}"] = (
                        f"SELECT * FROM read_json_auto({_quote(str(file))}, format = 'newline_delimited', "
                        f"ignore_errors = true)")
        return views

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        for name, source in self.views().items():
            con.execute(f'CREATE VIEW "{name}" AS {source}')
        return con

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.sql(sql, params=params).pl()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
