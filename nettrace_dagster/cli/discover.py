"""`nettrace discover [--source NAME] [--json]`: one discovery pass, reported per source.

Exit 0 when every source read succeeded, 1 when one failed (the report still lists what each
source fetched and stored: a failing source never stops the others)."""

from __future__ import annotations

import argparse

from nettrace_dagster.cli import emit, table


def register(sub: argparse._SubParsersAction) -> None:
    from nettrace_dagster.discovery.sources import SOURCES

    p = sub.add_parser("discover", help="read the discovery sources once and store new opportunities")
    p.add_argument("--source", action="append", choices=sorted(SOURCES), metavar="NAME",
                   help=f"only this source (repeatable): {', '.join(SOURCES)}")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.discovery.opportunities import discover, store_for
    from nettrace_dagster.settings import load_settings

    settings = load_settings()
    reports = discover(settings, only=args.source)
    failed = [r.source for r in reports if r.failure]
    payload = {"sources": [r.as_dict() for r in reports], "fetched": sum(r.fetched for r in reports),
               "new": sum(r.new for r in reports), "stored": store_for(settings).read().height, "failed": failed}
    rows = [[r.source, "yes" if r.enabled else "no", str(r.fetched), str(r.new), r.failure or ""] for r in reports]
    human = "\n".join([f"discovery: {payload['new']} new of {payload['fetched']} fetched; {payload['stored']} stored",
                       *table(["source", "enabled", "fetched", "new", "failure"], rows)])
    emit(payload, args.json, human)
    return 1 if failed else 0
