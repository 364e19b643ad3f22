"""Locks that die with their holder: the operating system releases them when the process exits,
however it exits (SIGKILL included), so a crashed trading tick never blocks the next one.

- SQLite ledger: `flock` on a file beside the database (`<db>.<name>.lock`); flock locks belong to
  the open file, so two threads of one process exclude each other too.
- PostgreSQL ledger: a session-level advisory lock on a dedicated connection; the server drops it
  when that connection closes, which a dead process's connection does.
"""

from __future__ import annotations

import fcntl
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text

from nettrace_dagster.ledger.db import Ledger


@contextmanager
def process_lock(ledger: Ledger, name: str) -> Iterator[bool]:
    """Try to take lock `name` without waiting; yields True while held, False if another holds it."""
    if ledger.is_sqlite:
        db = Path(make_url(ledger.url).database or "ledger.db")
        path = db.with_name(f"{db.name}.{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the flock
        return
    key = zlib.crc32(f"nettrace-lock:{name}".encode())
    with ledger.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
