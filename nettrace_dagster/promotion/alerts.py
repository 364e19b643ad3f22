"""Alerts. Until a notifier with webhooks exists (the deploy issue), a P1 alert is an ERROR log
line and one record in `alerts.jsonl`; `alert_p1` is the one function to extend."""

from __future__ import annotations

import logging
from pathlib import Path

from nettrace_dagster.audit import append_audit

log = logging.getLogger("nettrace.alerts")


def alert_p1(title: str, text: str, audit_dir: Path | None = None) -> None:
    """Raise a P1 alert: logged now (and appended to the alerts log when `audit_dir` is given)."""
    log.error("P1 %s: %s", title, text)
    if audit_dir is not None:
        try:
            append_audit(Path(audit_dir), "alerts", {"severity": "P1", "title": title, "text": text})
        except OSError as exc:  # an alert must never fail the rollback that raised it
            log.error("P1 alert not written to the audit log: %s", exc)
