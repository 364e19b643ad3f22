"""The coordinator's audit trail: one JSON line per decision in `conflict_log.jsonl`.

Records are written *after* the transaction that made the decision commits, so the log never
claims something the ledger does not hold. DuckDB reads it with
`SELECT * FROM read_json_auto('<audit_dir>/conflict_log.jsonl')`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nettrace_dagster.audit import append_audit

CONFLICT_LOG = "conflict_log"


class AuditSink:
    """Appends decisions to the conflict log (or nowhere, when `audit_dir` is None)."""

    def __init__(self, audit_dir: Path | str | None) -> None:
        self.audit_dir = Path(audit_dir) if audit_dir is not None else None

    def record(self, decision: str, **fields: Any) -> None:
        if self.audit_dir is None:
            return
        append_audit(self.audit_dir, CONFLICT_LOG, {"decision": decision, "pid": os.getpid(), **fields})
