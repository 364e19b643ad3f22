"""`nettrace demo`: the whole asset graph once, end to end, with a summary."""

from __future__ import annotations

import argparse
import sys

from nettrace_dagster.cli import emit
from nettrace_dagster.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="materialize the whole asset graph once and print a summary")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.demo import format_report, run_demo  # loads Dagster: only for this command

    settings = load_settings()
    progress = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    report = run_demo(settings, progress=progress)
    emit(report.as_dict(), args.json, format_report(report))
    return 0 if report.ok else 1
