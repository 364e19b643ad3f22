"""Append-only JSONL audit logs (deploy history, alerts, parameter changes, conflicts, …).

One file per log under the audit folder. A record is one `write` of one whole line to a file
opened with O_APPEND: the kernel appends each such write atomically (Linux holds the inode lock
for a regular file's write), so lines from concurrent processes never interleave, without a
lock of our own to wait for. DuckDB reads the files with `read_json_auto` (see `warehouse.py`).

Each record is written as its own line *between* newlines ("\n{...}\n"). A writer that dies
mid-write (SIGKILL between pages of a long record, a full disk, a power cut) leaves a torn line
without its newline; were the next record written as plain "{...}\n", it would be glued onto the
torn line and lost with it to every reader. The leading newline starts every record on a fresh
line whatever came before, with no check of the last byte that a concurrent writer could race;
the trailing one keeps a whole record whole if anything else (an older version, `echo >>`)
appends right after it. The cost is a blank line between records: readers skip blank lines, and
DuckDB's newline-delimited reader does too.

A written line survives the writer's crash (it is in the kernel's page cache once `write`
returns). `fsync=True` also survives a power cut, at ~2 ms a line here; the money state itself is
in the ledger, whose commits are durable, so the high-rate coordinator log does not ask for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def append_audit(audit_dir: Path, log: str, record: dict[str, Any], fsync: bool = False) -> dict[str, Any]:
    """Append `record` (with a UTC `ts` added unless given) to `<audit_dir>/<log>.jsonl`."""
    if not log.replace("_", "").isalnum():
        raise ValueError(f"audit log name {log!r} must be letters, digits and underscores")
    entry = {"ts": datetime.now(UTC).isoformat(), **record}
    line = ("\n" + json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()  # both: see above
    audit_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(audit_dir / f"{log}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # only a full disk does this; say so rather than leave half a line
            raise OSError(f"audit log {log}: wrote {written} of {len(line)} bytes")
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def read_audit(audit_dir: Path, log: str) -> Iterator[dict[str, Any]]:
    """Every record of one log, oldest first; blank and torn lines (a crash mid-write) are skipped."""
    path = audit_dir / f"{log}.jsonl"
    if not path.exists():
        return
    with path.open() as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
