"""Market data commands: `nettrace import`, `nettrace sql`, `nettrace init`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit, progress_printer, table
from nettrace_dagster.settings import Settings, load_settings

# A file this big takes seconds to validate and merge: say so on a terminal.
BIG_IMPORT_BYTES = 5_000_000

# The handlers import their domain modules themselves: every `nettrace` call loads every command
# module, and the lake and instance modules pull in Dagster.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a CSV/Parquet candle file into the lake (all or nothing)")
    p.add_argument("file", type=Path, help="the candle file: columns timestamp,open,high,low,close,volume")
    p.add_argument("--symbol", required=True, help="partition key, BASE-QUOTE like BTC-USDT")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle_import)

    q = sub.add_parser("sql", help="query the lake and audit logs with DuckDB (read-only)")
    q.add_argument("query", help="one SELECT (or WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)")
    q.add_argument("--json", action="store_true", help="print the rows as one JSON document (else an aligned table)")
    q.set_defaults(func=handle_sql)

    i = sub.add_parser("init", help="create NETTRACE_HOME and the Dagster instance config")
    i.add_argument("--json", action="store_true", help="print one JSON document")
    i.set_defaults(func=handle_init)


def handle_import(args: argparse.Namespace) -> int:
    from nettrace_dagster.market.importer import import_candles
    from nettrace_dagster.market.lake import Lake

    settings = load_settings()
    progress = progress_printer(args.json)
    size = args.file.stat().st_size if args.file.is_file() else 0
    if progress is not None and size >= BIG_IMPORT_BYTES:
        progress(f"importing {args.file} ({size / 1e6:.0f} MB) into candles[{args.symbol}]: "
                 "validating every row, then one atomic write …")
    result = import_candles(args.file, args.symbol, Lake(settings.lake_dir))
    emit(result.__dict__, args.json,
         f"{result.symbol}: {result.new_rows} new bar(s) of {result.rows_in_file} in the file; "
         f"{result.total_rows} stored, {result.first} … {result.last}")
    return 0


def handle_sql(args: argparse.Namespace) -> int:
    import duckdb

    from nettrace_dagster.warehouse import Warehouse, WarehouseError

    settings = load_settings()
    # A damaged lake file is left out of its view, and said so: the other partitions still answer.
    warehouse = Warehouse(settings.lake_dir, settings.audit_dir,
                          warn=lambda msg: print(f"nettrace sql: warning: {msg}", file=sys.stderr))
    try:
        df = warehouse.query(args.query)
    except (WarehouseError, duckdb.Error) as exc:  # the query's fault: one line, exit 2
        raise UsageError(_one_line(exc)) from None
    try:
        # Some values DuckDB can hold, polars cannot show (intervals, unions, 'infinity'
        # timestamps): a ComputeError, or a Rust panic that also writes its own lines to fd 2.
        with _fd2_silenced():
            rows = df.to_dicts()
            text = text_table(df.columns, [[_cell(v) for v in row] for row in df.rows()])
    except (Exception, PanicException) as exc:
        raise UsageError(f"cannot show the result: {_one_line(exc)}") from None
    emit(rows, args.json, text)
    return 0


def text_table(columns: list[str], rows: list[list[str]]) -> str:
    """The result as aligned columns (numbers to the right) and a row count, like psql."""
    lines = [line[2:] for line in table(list(columns), rows)] if columns else []
    return "\n".join([*lines, f"({len(rows)} row{'' if len(rows) == 1 else 's'})"])


def _cell(value: object) -> str:
    return "null" if value is None else str(value)


try:
    from polars.exceptions import PanicException
except ImportError:  # pragma: no cover - older polars: pyo3's own class
    PanicException = BaseException  # type: ignore[assignment,misc]


def _one_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


@contextmanager
def _fd2_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment: a Rust panic prints there past Python."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def handle_init(args: argparse.Namespace) -> int:
    from nettrace_dagster.ledger.db import ledger_of

    settings = load_settings()
    home = ensure_home(settings)
    ledger = ledger_of(settings)  # opening applies the ledger's pending schema migrations
    emit({"dagster_home": str(home), "ledger_schema": ledger.schema_revision}, args.json,
         f"DAGSTER_HOME={home}\nledger schema {ledger.schema_revision}")
    return 0


def ensure_home(settings: Settings) -> Path:
    """`prepare_home`, with an unusable home as one line (UsageError) instead of an OSError."""
    from nettrace_dagster.instance import prepare_home

    try:
        return prepare_home(settings)
    except OSError as exc:  # a file where a folder belongs, a read-only disk: the home is unusable
        where = exc.filename or settings.home
        reason = exc.strerror or str(exc)
        raise UsageError(f"NETTRACE_HOME {settings.home}: cannot create {where} ({reason})") from None
