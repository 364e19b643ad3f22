"""Alerts from the promotion pipeline, through the platform's notifier (Slack, Discord fallback,
`webhook_audit_trail.jsonl`; a log line and the audit record only when no webhook is set)."""

from __future__ import annotations

from pathlib import Path

from nettrace_dagster.notify import alert


def alert_p1(title: str, text: str, audit_dir: Path | None = None) -> None:
    """Raise a P1 alert (never raises: an alert must not fail the rollback that sent it)."""
    alert("P1", title, text, audit_dir=audit_dir)
