"""`nettrace demo`: the whole asset graph once, end to end, with a summary."""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import emit, progress_printer
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="materialize the whole asset graph once and print a summary")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.cli.market import ensure_home
    from nettrace_dagster.demo import format_report, run_demo  # loads Dagster: only for this command
    from nettrace_dagster.ledger.db import ledger_of

    settings = load_settings()
    # Bad input is found before the first run: an unusable home or ledger (bad URL, damaged file)
    # is one line and exit 2 here, not a failed step in every run of the graph and exit 1.
    ensure_home(settings)
    ledger_of(settings)
    report = run_demo(settings, progress=progress_printer(args.json))  # a terminal only, never --json
    emit(report.as_dict(), args.json, format_report(report))
    return 0 if report.ok else 1
