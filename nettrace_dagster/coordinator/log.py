"""The coordinator's audit trail: one JSON line per decision in `conflict_log.jsonl`.

Records are written *after* the transaction that made the decision commits, so the log never
claims something the ledger does not hold. DuckDB reads it with
`SELECT * FROM read_json_auto('<audit_dir>/conflict_log.jsonl')`.

The audit trail must never stand between the ledger and an exit: by then the money state has
committed, and an exception here would turn a done decision into an apparent failure (a caller
could retry it, or stop before booking the next fill). So `AuditSink.record` never raises;
it reports a failed write instead (see its docstring).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from nettrace_dagster.audit import append_audit

CONFLICT_LOG = "conflict_log"
log = logging.getLogger(__name__)


class AuditSink:
    """Appends decisions to the conflict log (or nowhere, when `audit_dir` is None).

    `failures` counts the records that could not be written and `last_error` says why, so a
    caller (a CLI command, a status report) can tell the user "audit unwritable" after the fact.
    """

    def __init__(self, audit_dir: Path | str | None) -> None:
        self.audit_dir = Path(audit_dir) if audit_dir is not None else None
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()  # the counter only; writes need no lock (see audit.py)

    @property
    def healthy(self) -> bool:
        """No record has been lost since this sink was made."""
        return self.failures == 0

    def record(self, decision: str, **fields: Any) -> bool:
        """Append one decision. Never raises (an `Exception`): money paths call this after they
        commit. Returns True when the record was written (or there is no audit folder), False
        when it was not; a failure is also counted in `failures`, kept in `last_error` and logged
        as one line naming the decision and the error, not the fields (whatever a caller passed:
        the line stays short, and the error alone says what to fix)."""
        if self.audit_dir is None:
            return True
        try:
            append_audit(self.audit_dir, CONFLICT_LOG, {"decision": decision, "pid": os.getpid(), **fields})
        except Exception as exc:  # noqa: BLE001 - the contract: nothing escapes into a money path
            error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.failures += 1
                self.last_error = error
            try:
                log.error("audit unwritable: %s record not written to %s/%s.jsonl (%s)",
                          decision, self.audit_dir, CONFLICT_LOG, error)
            except Exception:  # noqa: BLE001 - a broken log handler must not raise either
                pass
            return False
        return True
