"""`nettrace migrate`: bring the ledger's schema to this NetTrace's revision (docs/migrations.md).

- `nettrace migrate [--json]` applies the pending revisions to the ledger NETTRACE_LEDGER_URL names
  (opening the ledger anywhere does the same; this says what it did).
- `nettrace migrate --check` exits 1 when the models have a change no revision makes (a new table
  without its revision), listing it.
- `nettrace migrate --new "message"` writes that revision into the package's migrations (for
  developers: review the file, then commit it).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply the ledger's schema migrations (Alembic); --new writes one")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--new", metavar="MESSAGE", help="write the next revision from the models (developers)")
    group.add_argument("--check", action="store_true",
                       help="exit 1 if the models have changes no revision makes")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.ledger import migrate

    try:
        if args.new is not None:
            path = migrate.new_revision(args.new)
            emit({"written": str(path)}, args.json, f"wrote {path}\nreview it, then run: nettrace migrate --check")
            return 0
        if args.check:
            return _check(args.json)
    except migrate.MigrationError as exc:
        raise UsageError(str(exc)) from None
    return _apply(args.json)


def _apply(as_json: bool) -> int:
    from nettrace_dagster.ledger.db import open_ledger, redact
    from nettrace_dagster.settings import load_settings

    settings = load_settings()
    ledger = open_ledger(settings.ledger_url, settings.nettrace_ledger_synchronous)
    before, after = ledger.schema_migrated or (ledger.schema_revision, ledger.schema_revision)
    payload = {"ledger": redact(ledger.url), "from": before, "to": after, "migrated": before != after}
    human = (f"{payload['ledger']}: schema {before or 'none'} -> {after}" if before != after
             else f"{payload['ledger']}: schema at {after}, nothing to apply")
    emit(payload, as_json, human)
    return 0


def _check(as_json: bool) -> int:
    from sqlalchemy import create_engine

    from nettrace_dagster.ledger import migrate

    with tempfile.TemporaryDirectory(prefix="nettrace-migrate-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            with engine.begin() as conn:
                migrate.upgrade(conn)
                diffs = [repr(d) for d in migrate.differences(conn)]
        finally:
            engine.dispose()
    payload = {"head": migrate.head(), "differences": diffs, "ok": not diffs}
    human = (f"migrations at {payload['head']} match the models" if not diffs else
             f"{len(diffs)} model change(s) without a revision (run: nettrace migrate --new \"what changed\"):\n"
             + "\n".join(f"  {d}" for d in diffs))
    emit(payload, as_json, human)
    return 0 if not diffs else 1
