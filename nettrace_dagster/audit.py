"""Append-only JSONL audit logs (deploy history, alerts, parameter changes, conflicts, …).

One file per log under the audit folder. A record is written with a single `write` on a file
opened in append mode under an exclusive `flock`, so lines from concurrent processes never
interleave; DuckDB reads the files with `read_json_auto` (see `warehouse.py`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def append_audit(audit_dir: Path, log: str, record: dict[str, Any]) -> dict[str, Any]:
    """Append `record` (with a UTC `ts` added unless given) to `<audit_dir>/<log>.jsonl`."""
    if not log.replace("_", "").isalnum():
        raise ValueError(f"audit log name {log!r} must be letters, digits and underscores")
    entry = {"ts": datetime.now(UTC).isoformat(), **record}
    line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
    audit_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(audit_dir / f"{log}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    return entry


def read_audit(audit_dir: Path, log: str) -> Iterator[dict[str, Any]]:
    """Every record of one log, oldest first; a torn last line (crash mid-write) is skipped."""
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
