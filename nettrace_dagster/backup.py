"""`nettrace backup DIR` / `nettrace restore DIR`: the ledger, the audit logs and the lake, taken
consistently while trading runs, restored only when every byte checks out.

What a backup holds (`DIR/manifest.json` lists every file with its size and SHA-256):
- the ledger. SQLite: `ledger.sqlite`, made by SQLite's online backup API in one step, i.e. one
  read transaction: a consistent snapshot that never blocks a writer (WAL). PostgreSQL:
  `ledger/<table>.copy`, each table's rows as `COPY … TO STDOUT` text, all read in one REPEATABLE
  READ snapshot. (Not pg_dump: its archive names the schema it came from and wants a client as new
  as the server; these files restore into any database or schema, with no client binary.) The
  manifest records the schema revision and every table's row count;
- the audit logs, `audit/<log>.jsonl`, copied *after* the ledger snapshot up to their last whole
  line. A record the ledger's outbox still held at the snapshot may then be in both; restore drops
  such outbox rows (an appended record carries its `outbox_id`), so nothing is lost or doubled;
- the lake, `lake/**` (Parquet files are replaced by rename, so each copy is one whole version;
  temporary `.*.tmp` files are skipped).
The manifest is written last: a backup that was interrupted has none, and restore refuses it.
Not included: the Dagster run history and the Optuna studies (both can be rebuilt by running).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from nettrace_dagster.ledger import migrate
from nettrace_dagster.ledger.db import Ledger, normalise_url, open_ledger, redact
from nettrace_dagster.ledger.models import Base
from nettrace_dagster.settings import Settings

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup that cannot be taken or restored as asked; one line naming the problem."""


# --- taking a backup -------------------------------------------------------------------------------
def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    """Write a backup of `settings`' home into `dest` (a new or empty folder); the manifest."""
    started = time.perf_counter()
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} is not an empty folder: back up into a new one")
    dest.mkdir(parents=True, exist_ok=True)
    ledger = open_ledger(settings.ledger_url, settings.nettrace_ledger_synchronous)
    files: list[dict[str, Any]] = []
    if ledger.is_sqlite:
        ledger_info = _backup_sqlite(ledger, dest / "ledger.sqlite")
        files.append(_entry(dest, dest / "ledger.sqlite"))
    else:
        ledger_info = _backup_postgres(ledger, dest / "ledger")
        files += [_entry(dest, p) for p in sorted((dest / "ledger").iterdir())]
    audit_lines = {}
    for log in sorted(settings.audit_dir.glob("*.jsonl")) if settings.audit_dir.is_dir() else []:
        target = dest / "audit" / log.name
        audit_lines[log.stem] = _copy_whole_lines(log, target)
        files.append(_entry(dest, target))
    for src in _lake_files(settings.lake_dir):
        target = dest / "lake" / src.relative_to(settings.lake_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        files.append(_entry(dest, target))
    manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "home": str(settings.home),
                "ledger": {**ledger_info, "url": redact(ledger.url)}, "audit_lines": audit_lines,
                "files": files, "bytes": sum(f["bytes"] for f in files),
                "seconds": round(time.perf_counter() - started, 3)}
    _write_atomic(dest / MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


def _backup_sqlite(ledger: Ledger, target: Path) -> dict[str, Any]:
    source = sqlite3.connect(make_url(ledger.url).database or "", timeout=60)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy, pages=-1)  # one step: one read transaction, one consistent snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"the copy of {redact(ledger.url)} failed SQLite's integrity check")
        rows = _sqlite_counts(copy)
        revision = _sqlite_revision(copy)
    finally:
        source.close()
        copy.close()
    return {"kind": "sqlite", "revision": revision, "rows": rows}


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in sorted(names)}


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute(f"SELECT version_num FROM {migrate.VERSION_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _ledger_tables(conn: Any) -> list[str]:
    """The ledger's tables in the order their rows can be loaded (parents first), plus Alembic's."""
    from sqlalchemy import inspect

    present = set(inspect(conn).get_table_names())
    ordered = [t.name for t in Base.metadata.sorted_tables if t.name in present]
    return ordered + ([migrate.VERSION_TABLE] if migrate.VERSION_TABLE in present else [])


def _backup_postgres(ledger: Ledger, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    rows, columns = {}, {}
    with ledger.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            tables = _ledger_tables(conn)
            revision = conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalar()
            cursor = conn.connection.driver_connection.cursor()
            for table in tables:
                columns[table] = [c["name"] for c in _columns(conn, table)]
                cols = ", ".join(f'"{c}"' for c in columns[table])
                with (folder / f"{table}.copy").open("wb") as out, \
                        cursor.copy(f'COPY (SELECT {cols} FROM "{table}") TO STDOUT') as copy:
                    for chunk in copy:
                        out.write(chunk)
                rows[table] = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
    return {"kind": "postgresql", "revision": revision, "rows": rows, "columns": columns}


def _columns(conn: Any, table: str) -> list[dict[str, Any]]:
    from sqlalchemy import inspect

    return inspect(conn).get_columns(table)


def _copy_whole_lines(src: Path, target: Path) -> int:
    """Copy `src` up to its last newline now (a record being appended is left for the next backup);
    the number of records copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fh:
        data = fh.read(src.stat().st_size)
    data = data[: data.rfind(b"\n") + 1]
    target.write_bytes(data)
    return sum(1 for line in data.split(b"\n") if line.strip())


def _lake_files(lake: Path) -> Iterator[Path]:
    if not lake.is_dir():
        return
    for path in sorted(lake.rglob("*")):
        if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
            yield path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(root: Path, path: Path) -> dict[str, Any]:
    return {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- restoring ----------------------------------------------------------------------------------
def verify(src: Path) -> dict[str, Any]:
    """The manifest of the backup in `src`, once every file it lists is there, whole and unchanged."""
    src = Path(src)
    if not src.is_dir():
        raise BackupError(f"{src} is not a folder")
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} is not a complete NetTrace backup: no {MANIFEST} (an interrupted backup has none)")
    try:
        manifest = json.loads(path.read_text())
        files, kind = manifest["files"], manifest["ledger"]["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is damaged ({type(exc).__name__}); the backup cannot be trusted") from None
    if manifest.get("format") != FORMAT or kind not in ("sqlite", "postgresql"):
        raise BackupError(f"{path}: format {manifest.get('format')!r} / ledger {kind!r} is not one this NetTrace reads")
    for entry in files:
        rel = Path(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupError(f"{path} lists {entry['path']!r}, outside the backup: refusing it")
        file = src / rel
        if not file.is_file():
            raise BackupError(f"backup is incomplete: {entry['path']} is missing")
        if file.stat().st_size != entry["bytes"]:
            raise BackupError(f"backup is corrupt: {entry['path']} has {file.stat().st_size} bytes, "
                              f"the manifest says {entry['bytes']}")
        if _sha256(file) != entry["sha256"]:
            raise BackupError(f"backup is corrupt: {entry['path']} does not match its SHA-256 in the manifest")
    return manifest


def home_is_empty(settings: Settings) -> tuple[bool, str]:
    """(empty, what is there): restore overwrites only an empty home unless forced."""
    for folder in (settings.lake_dir, settings.audit_dir):
        if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
            return False, f"{folder} holds files"
    url = settings.ledger_url
    if make_url(normalise_url(url)).get_backend_name() == "sqlite":
        db = Path(make_url(url).database or "")
        if db.exists() and db.stat().st_size > 0:
            ledger = open_ledger(url, settings.nettrace_ledger_synchronous)
            if _has_rows(ledger):
                return False, f"the ledger {db} holds rows"
        return True, ""
    ledger = open_ledger(url, settings.nettrace_ledger_synchronous)
    return (False, f"the ledger {redact(ledger.url)} holds rows") if _has_rows(ledger) else (True, "")


def _has_rows(ledger: Ledger) -> bool:
    with ledger.read() as s:
        tables = _ledger_tables(s.connection())
        return any(s.execute(text(f'SELECT 1 FROM "{t}" LIMIT 1')).first()
                   for t in tables if t != migrate.VERSION_TABLE)


def restore(settings: Settings, src: Path, force: bool = False) -> dict[str, Any]:
    """Restore the backup in `src` into `settings`' home (and ledger); what was restored."""
    src = Path(src)
    manifest = verify(src)
    kind = manifest["ledger"]["kind"]
    target_kind = make_url(normalise_url(settings.ledger_url)).get_backend_name()
    if kind != target_kind:
        raise BackupError(f"the backup holds a {kind} ledger but NETTRACE_LEDGER_URL names a {target_kind} one; "
                          "restore it with the same kind of ledger")
    if not force:  # (forced: the ledger may be the damaged thing being replaced; it is not opened)
        empty, what = home_is_empty(settings)
        if not empty:
            raise BackupError(f"{what}: restore overwrites it only with --force")
    settings.home.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        _restore_sqlite(settings, src / "ledger.sqlite")
    else:
        _restore_postgres(settings, src / "ledger", manifest["ledger"])
    for part in ("audit", "lake"):
        _replace_folder(src / part, settings.home / part, [f for f in manifest["files"]
                                                          if f["path"].startswith(part + "/")])
    ledger = open_ledger(settings.ledger_url, settings.nettrace_ledger_synchronous)  # applies newer revisions
    dropped = _drop_appended_outbox_rows(ledger, settings.audit_dir)
    rows = _counts(ledger)
    expected = {t: n for t, n in manifest["ledger"]["rows"].items() if t != migrate.VERSION_TABLE}
    expected["audit_outbox"] = expected.get("audit_outbox", 0) - dropped
    wrong = {t: (rows.get(t), n) for t, n in expected.items() if rows.get(t) != n}
    if wrong:
        raise BackupError(f"restored ledger row counts differ from the manifest: {wrong}")
    return {"from": str(src), "home": str(settings.home), "ledger": redact(ledger.url),
            "revision": ledger.schema_revision, "rows": rows, "files": len(manifest["files"]),
            "outbox_rows_already_in_audit": dropped, "audit_lines": manifest["audit_lines"]}


def _restore_sqlite(settings: Settings, file: Path) -> None:
    db = Path(make_url(settings.ledger_url).database or "")
    db.parent.mkdir(parents=True, exist_ok=True)
    _forget(settings)
    tmp = db.with_name(f".{db.name}.restore.tmp")
    shutil.copyfile(file, tmp)
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    for suffix in ("-wal", "-shm"):  # the old database's log must never be replayed onto the restored one
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, db)


def _restore_postgres(settings: Settings, folder: Path, info: dict[str, Any]) -> None:
    ledger = Ledger(settings.ledger_url, settings.nettrace_ledger_synchronous)
    try:
        with ledger.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(b"nettrace-ledger")})
            for table in reversed([t for t in _ledger_tables(conn) if t != migrate.VERSION_TABLE]):
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
            conn.execute(text(f"DROP TABLE IF EXISTS {migrate.VERSION_TABLE}"))
            migrate.upgrade(conn, info["revision"])  # the backup's schema, then its rows
            cursor = conn.connection.driver_connection.cursor()
            for table in [t for t in _ledger_tables(conn) if t != migrate.VERSION_TABLE]:
                cols = ", ".join(f'"{c}"' for c in info["columns"].get(table, []))
                if not cols:
                    continue
                with (folder / f"{table}.copy").open("rb") as fh, \
                        cursor.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
                    while chunk := fh.read(CHUNK):
                        copy.write(chunk)
                for col in info["columns"][table]:  # serial ids continue after the restored rows
                    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": col}).scalar()
                    if seq:
                        conn.execute(text(f'SELECT setval(:s, coalesce((SELECT max("{col}") FROM "{table}"), 0) + 1, '
                                          "false)"), {"s": seq})
    finally:
        ledger.dispose()
    _forget(settings)


def _forget(settings: Settings) -> None:
    """Drop this process's cached engines for the ledger: they point at what is being replaced."""
    from nettrace_dagster.ledger import db as ledger_db

    for key in [k for k in ledger_db._CACHE if k[0] == normalise_url(settings.ledger_url)]:
        ledger_db._CACHE.pop(key).dispose()


def _replace_folder(src: Path, target: Path, entries: list[dict[str, Any]]) -> None:
    """Copy the backup's files into a fresh folder beside `target`, then swap it in."""
    staging = target.with_name(f".{target.name}.restore")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for entry in entries:
        rel = Path(entry["path"]).relative_to(target.name)
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, staging / rel)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _drop_appended_outbox_rows(ledger: Ledger, audit_dir: Path) -> int:
    """Outbox rows whose record the restored audit log already holds (appended after the ledger
    snapshot, before the logs were copied): deleting them keeps each record exactly once. A record
    is matched whole (its microsecond `ts` and fields, plus the `outbox_id` the flush adds):
    outbox ids alone are reused once the outbox has been emptied."""
    from nettrace_dagster.audit import read_audit
    from nettrace_dagster.ledger.models import AuditOutbox

    with ledger.tx() as s:
        rows = list(s.query(AuditOutbox))
        seen: dict[str, set[str]] = {}
        dropped = 0
        for row in rows:
            if row.log not in seen:
                seen[row.log] = {_key(r) for r in read_audit(audit_dir, row.log) if "outbox_id" in r}
            if _key({**json.loads(row.record), "outbox_id": row.id}) in seen[row.log]:
                s.delete(row)
                dropped += 1
    return dropped


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _counts(ledger: Ledger) -> dict[str, int]:
    with ledger.read() as s:
        return {t: int(s.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() or 0)
                for t in _ledger_tables(s.connection()) if t != migrate.VERSION_TABLE}
