"""Alerts: `alert(severity, title, text)` — Slack incoming webhook first, Discord as fallback.

Severities: P0 (HARDSTOP), P1 (failed deploy, rollback, guardrail rollback, failed Dagster run),
P2/P3 (deploy stages, information). Every alert is a line in `webhook_audit_trail.jsonl` whatever
happened to it; without `SLACK_WEBHOOK_URL` / `DISCORD_WEBHOOK_URL` it is only logged and audited.
Secrets (webhook URLs, tokens) never reach a log or the audit: errors are recorded by kind and
status code, and any secret setting's value found in a text is masked. `alert` never raises, and
with `wait=False` it returns at once (the post runs on a daemon thread) — the trading path's way.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from pathlib import Path
from typing import Any

from nettrace_dagster.settings import SETTINGS, Settings, load_settings

SEVERITIES = ("P0", "P1", "P2", "P3")
log = logging.getLogger("nettrace.notify")
# A library logs to whatever the application configured (Dagster's handlers, a service's): never
# Python's last-resort stderr handler, which would add lines to a command's one-line output.
log.addHandler(logging.NullHandler())

_pending: list[threading.Thread] = []


@atexit.register
def _drain(timeout_s: float = 10.0) -> None:
    """A short-lived process (`nettrace hardstop on`) waits, bounded, for its background alerts."""
    deadline = time.monotonic() + timeout_s
    for thread in list(_pending):
        thread.join(max(0.0, deadline - time.monotonic()))

_last_sent: dict[tuple[str, str], float] = {}
_rate_lock = threading.Lock()


def _rate_limited(severity: str, title: str, min_interval_s: float, now: float) -> bool:
    """The same (severity, title) at most once per `min_interval_s`; P0 is never held back."""
    if severity == "P0" or min_interval_s <= 0:
        return False
    with _rate_lock:
        last = _last_sent.get((severity, title))
        if last is not None and now - last < min_interval_s:
            return True
        _last_sent[(severity, title)] = now
        return False


def reset_rate_limit() -> None:
    with _rate_lock:
        _last_sent.clear()


def mask_secrets(text: str, settings: Settings) -> str:
    for s in SETTINGS:
        value = settings.values.get(s.name) if s.secret else None
        if isinstance(value, str) and len(value) >= 4 and value in text:
            text = text.replace(value, "<secret>")
    return text


def _post(url: str, payload: dict[str, Any], timeout_s: float) -> str | None:
    """None when the webhook took it; otherwise what went wrong, without the URL."""
    import httpx

    try:
        resp = httpx.post(url, json=payload, timeout=timeout_s)
    except httpx.TimeoutException:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a malformed URL and the like: never the caller's problem
        return type(exc).__name__
    return None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"


def _deliver(severity: str, title: str, text: str, settings: Settings, audit_dir: Path | None = None) -> None:
    from nettrace_dagster.audit import append_audit

    record: dict[str, Any] = {"severity": severity, "title": title, "text": text, "channel": None,
                              "status": "logged", "errors": []}
    try:
        timeout = float(settings.nettrace_alert_timeout_s)
        message = f"[{severity}] {title}\n{text}"
        for channel, url, payload in (("slack", settings.slack_webhook_url, {"text": message}),
                                      ("discord", settings.discord_webhook_url, {"content": message[:1990]})):
            if not url:
                continue
            problem = _post(url, payload, timeout)
            if problem is None:
                record["channel"], record["status"] = channel, "sent"
                break
            record["errors"].append(f"{channel}: {problem}")
            record["status"] = "failed"
        level = logging.ERROR if severity in ("P0", "P1") else logging.INFO
        log.log(level, "alert %s %s: %s (%s)", severity, title, text, record["status"])
    finally:
        try:
            append_audit(audit_dir or settings.audit_dir, "webhook_audit_trail", record)
        except Exception as exc:  # noqa: BLE001 - an unwritable audit folder must not reach the caller either
            log.warning("webhook audit trail unwritable: %s", type(exc).__name__)


def alert(severity: str, title: str, text: str, settings: Settings | None = None, wait: bool = True,
          audit_dir: Path | str | None = None) -> None:
    """Send one alert (see the module docstring). Never raises. `audit_dir` overrides the settings'
    audit folder (an engine built with its own)."""
    try:
        audit_dir = Path(audit_dir) if audit_dir is not None else None
        settings = settings or load_settings()
        severity = severity if severity in SEVERITIES else "P3"
        title, text = mask_secrets(str(title), settings)[:200], mask_secrets(str(text), settings)[:4000]
        if _rate_limited(severity, title, float(settings.nettrace_alert_min_interval_s), time.monotonic()):
            from nettrace_dagster.audit import append_audit

            append_audit(audit_dir or settings.audit_dir, "webhook_audit_trail", {
                "severity": severity, "title": title, "text": text, "channel": None, "status": "rate_limited",
                "errors": []})
            return
        if wait:
            _deliver(severity, title, text, settings, audit_dir)
        else:
            thread = threading.Thread(target=_safe_deliver, args=(severity, title, text, settings, audit_dir),
                                      daemon=True, name="nettrace-alert")
            _pending[:] = [t for t in _pending if t.is_alive()]
            _pending.append(thread)
            thread.start()
    except Exception as exc:  # noqa: BLE001 - an alert must never take its caller down
        log.warning("alert failed: %s", type(exc).__name__)


def _safe_deliver(severity: str, title: str, text: str, settings: Settings, audit_dir: Path | None) -> None:
    try:
        _deliver(severity, title, text, settings, audit_dir)
    except Exception as exc:  # noqa: BLE001
        log.warning("alert failed: %s", type(exc).__name__)
