"""`nettrace backup DIR` and `nettrace restore DIR [--force]` (the ledger, audit logs and lake; see
`nettrace_dagster/backup.py` for what is taken and how it stays consistent while trading runs)."""

from __future__ import annotations

import argparse
import fcntl
import os
from pathlib import Path

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.settings import Settings, load_settings


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="back up the ledger, audit logs and lake into DIR (safe while trading runs)")
    b.add_argument("dir", type=Path, help="a new or empty folder")
    b.add_argument("--json", action="store_true", help="print the manifest summary as one JSON document")
    b.set_defaults(func=handle_backup)

    r = sub.add_parser("restore", help="restore a backup from DIR into NETTRACE_HOME (verifies every checksum first)")
    r.add_argument("dir", type=Path, help="a folder written by `nettrace backup`")
    r.add_argument("--force", action="store_true", help="overwrite a home that already holds data")
    r.add_argument("--json", action="store_true", help="print one JSON document")
    r.set_defaults(func=handle_restore)


def handle_backup(args: argparse.Namespace) -> int:
    from nettrace_dagster.backup import BackupError, backup

    try:
        manifest = backup(load_settings(), args.dir)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    ledger = manifest["ledger"]
    summary = {"dir": str(args.dir), "ledger": ledger["url"], "revision": ledger["revision"], "rows": ledger["rows"],
               "audit_lines": manifest["audit_lines"], "files": len(manifest["files"]), "bytes": manifest["bytes"],
               "seconds": manifest["seconds"]}
    lake = sum(1 for f in manifest["files"] if f["path"].startswith("lake/"))
    emit(summary, args.json,
         f"backed up to {args.dir}: ledger ({ledger['kind']}, schema {ledger['revision']}, "
         f"{sum(n for t, n in ledger['rows'].items() if t != 'alembic_version')} rows), {sum(manifest['audit_lines'].values())} audit records in "
         f"{len(manifest['audit_lines'])} log(s), {lake} lake file(s); {manifest['bytes'] / 1e6:.1f} MB "
         f"in {manifest['seconds']:.1f} s")
    return 0


def handle_restore(args: argparse.Namespace) -> int:
    from nettrace_dagster.backup import BackupError, restore, verify

    settings = load_settings()
    try:
        verify(args.dir)  # a corrupt backup is refused before anything in the home is looked at
        if args.force:
            busy = _trading(settings)
            if busy:
                raise UsageError(f"a trading tick holds the lock of account(s) {', '.join(busy)}; stop the "
                                 "trader (dagster dev, nodes) before restoring over its ledger")
        result = restore(settings, args.dir, force=args.force)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    emit(result, args.json,
         f"restored {args.dir} into {result['home']}: ledger {result['ledger']} at schema {result['revision']} "
         f"({sum(result['rows'].values())} rows), {result['files']} file(s) verified")
    return 0


def _trading(settings: Settings) -> list[str]:
    """Accounts a live trading tick holds. A damaged SQLite ledger cannot be opened to ask, so its
    trading locks (flock files beside it, see coordinator/locks.py) are tried directly."""
    from sqlalchemy import make_url

    from nettrace_dagster.cli.reset import trading_holders
    from nettrace_dagster.ledger.db import LedgerError

    try:
        return trading_holders(settings)
    except LedgerError:
        if not settings.ledger_url.startswith("sqlite"):
            raise
    busy = []
    db = Path(make_url(settings.ledger_url).database or "")
    for lock in sorted(db.parent.glob(f"{db.name}.trading-*.lock")):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy.append(lock.name.removeprefix(f"{db.name}.trading-").removesuffix(".lock"))
        finally:
            os.close(fd)
    return busy
