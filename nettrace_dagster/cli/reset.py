"""`nettrace reset [--yes]`: delete NETTRACE_HOME's state (ledger, lake, audit, Dagster history).

Start afresh after the demo (Rule 3's verdicts stay in an account for good). Safe by design:
- it asks `y/N` on a terminal; without a terminal it refuses unless `--yes` is given (exit 2);
- it refuses a folder that does not look like a NetTrace home (none of ledger.db, lake/, dagster/
  inside), so a mistyped NETTRACE_HOME can never delete an arbitrary folder;
- it refuses while a trading tick holds an account's lock (the same OS lock the trader takes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import Settings, load_settings

# What makes a folder a NetTrace home: at least one of these inside it.
MARKERS = ("ledger.db", "lake", "dagster")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reset", help="delete NETTRACE_HOME's state (ledger, lake, audit, Dagster runs) to start afresh")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def looks_like_home(home: Path) -> bool:
    return home.is_dir() and any((home / m).exists() for m in MARKERS)


def trading_holders(settings: Settings) -> list[str]:
    """Accounts whose trading lock a live process holds right now (a tick in progress)."""
    from nettrace_dagster.coordinator.locks import process_lock
    from nettrace_dagster.execution.risk import ACCOUNT_OF_MODE
    from nettrace_dagster.ledger.db import ledger_of

    ledger = ledger_of(settings)
    busy = []
    for account in sorted(set(ACCOUNT_OF_MODE.values())):
        with process_lock(ledger, f"trading-trader:{account}") as free:
            if not free:
                busy.append(account)
    return busy


def handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    home = settings.home.resolve()
    if not home.exists():
        emit({"home": str(home), "deleted": False, "reason": "nothing to delete"}, args.json,
             f"{home}: nothing to delete")
        return 0
    if not looks_like_home(home):
        raise UsageError(f"NETTRACE_HOME {home} does not look like a NetTrace home (no "
                         f"{', '.join(MARKERS)} inside); refusing to delete it")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to confirm on; run `nettrace reset --yes` to delete without asking")
        print(f"This deletes everything under {home}: the ledger (fills, positions, fired strategies), "
              "the lake, the audit logs and the Dagster run history.", file=sys.stderr)
        try:
            answer = input("Delete it? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            emit({"home": str(home), "deleted": False, "reason": "not confirmed"}, args.json, "not deleted")
            return 1
    if (home / "ledger.db").exists() or settings.values.get("NETTRACE_LEDGER_URL"):
        busy = trading_holders(settings)
        if busy:
            raise UsageError(f"a trading tick holds the lock of account(s) {', '.join(busy)}; "
                             "stop the trader (dagster dev, nodes) and try again")
    removed = sorted(p.name for p in home.iterdir())
    for path in home.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if settings.values.get("NETTRACE_LEDGER_URL"):  # a ledger outside the home is not a folder to delete
        from nettrace_dagster.ledger.db import redact

        print(f"nettrace reset: warning: the ledger at {redact(settings.ledger_url)} (NETTRACE_LEDGER_URL) "
              "was not touched", file=sys.stderr)
    emit({"home": str(home), "deleted": True, "removed": removed}, args.json,
         f"deleted {len(removed)} item(s) under {home}: {', '.join(removed)}\n"
         "start again with: nettrace demo")
    return 0
