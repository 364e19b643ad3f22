"""Market data commands: `nettrace import`, `nettrace sql`, `nettrace init`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import load_settings

# The handlers import their domain modules themselves: every `nettrace` call loads every command
# module, and the lake and instance modules pull in Dagster.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a CSV/Parquet candle file into the lake (all or nothing)")
    p.add_argument("file", type=Path)
    p.add_argument("--symbol", required=True, help="partition key, e.g. BTC-USDT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=handle_import)

    q = sub.add_parser("sql", help="query the lake and audit logs with DuckDB")
    q.add_argument("query")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=handle_sql)

    i = sub.add_parser("init", help="create NETTRACE_HOME and the Dagster instance config")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=handle_init)


def handle_import(args: argparse.Namespace) -> int:
    from nettrace_dagster.market.importer import import_candles
    from nettrace_dagster.market.lake import Lake

    settings = load_settings()
    result = import_candles(args.file, args.symbol, Lake(settings.lake_dir))
    emit(result.__dict__, args.json,
         f"{result.symbol}: {result.new_rows} new bar(s) of {result.rows_in_file} in the file; "
         f"{result.total_rows} stored, {result.first} … {result.last}")
    return 0


def handle_sql(args: argparse.Namespace) -> int:
    from nettrace_dagster.warehouse import Warehouse

    settings = load_settings()
    try:
        df = Warehouse(settings.lake_dir, settings.audit_dir).query(args.query)
    except Exception as exc:  # duckdb raises many types; all are bad input here
        raise UsageError(str(exc).splitlines()[0]) from None
    emit(df.to_dicts(), args.json, str(df))
    return 0


def handle_init(args: argparse.Namespace) -> int:
    from nettrace_dagster.instance import prepare_home

    home = prepare_home(load_settings())
    emit({"dagster_home": str(home)}, args.json, f"DAGSTER_HOME={home}")
    return 0
