"""Health gates of one region: DNS (its host name resolves), HTTP (`/health` answers 200 in time),
telemetry (the expected release, a tick no older than NETTRACE_TELEMETRY_MAX_AGE_S, no loop
error) and reconciliation (the node's positions equal the ledger's for its account). A node
that answers slowly fails HTTP by timeout; a dead one by connection refused."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from nettrace_dagster.deploy.positions import as_map, ledger_positions, position_differences
from nettrace_dagster.ledger.db import Ledger


@dataclass
class GateResult:
    region: str
    ok: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    refused: bool = False  # nothing listens: a local node that is gone does not come back by itself

    @property
    def failed(self) -> list[str]:
        return [f"{name}: {c['detail']}" for name, c in self.checks.items() if not c["ok"]]

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "ok": self.ok, "checks": self.checks}


def check_region(region: str, base_url: str, host: str, release_id: str, ledger: Ledger, account: str,
                 http_timeout_s: float, max_age_s: float, clock=time.time) -> GateResult:  # noqa: ANN001
    checks: dict[str, dict[str, Any]] = {}
    result = GateResult(region, False, checks)

    def record(name: str, ok: bool, detail: str = "ok") -> bool:
        checks[name] = {"ok": ok, "detail": detail}
        return ok

    try:
        socket.getaddrinfo(host, None)
        record("dns", True, f"{host} resolves")
    except OSError as exc:
        record("dns", False, f"{host} does not resolve ({exc.strerror or exc})")
        return result
    try:
        with httpx.Client(base_url=base_url, timeout=http_timeout_s) as client:
            resp = client.get("/health")
            if not record("http", resp.status_code == 200, f"/health answered {resp.status_code}"):
                return result
            telemetry = client.get("/telemetry").json()
            result.telemetry = telemetry
            if not _telemetry_ok(record, telemetry, release_id, max_age_s, clock()):
                return result
            node = as_map(telemetry.get("positions") or [])
            diffs = position_differences(node, ledger_positions(ledger, account))
            if diffs:  # a tick may have landed between the two reads: ask once more
                again = client.get("/telemetry").json()
                if again.get("ticks") != telemetry.get("ticks"):
                    result.telemetry = again
                    diffs = position_differences(as_map(again.get("positions") or []),
                                                 ledger_positions(ledger, account))
            record("reconciliation", not diffs, "; ".join(diffs[:5]) if diffs else
                   f"{len(node)} position(s) agree with the ledger ({account})")
    except httpx.TimeoutException:
        record("http", False, f"no answer within {http_timeout_s:g}s")
        return result
    except httpx.ConnectError as exc:
        result.refused = True
        record("http", False, f"connection refused ({type(exc).__name__})")
        return result
    except (httpx.HTTPError, ValueError) as exc:
        record("http", False, f"{type(exc).__name__}: {str(exc)[:120]}")
        return result
    result.ok = all(c["ok"] for c in checks.values())
    return result


def _telemetry_ok(record, telemetry: dict[str, Any], release_id: str, max_age_s: float,  # noqa: ANN001
                  now: float) -> bool:
    if telemetry.get("release") != release_id:
        return record("telemetry", False, f"runs release {telemetry.get('release')}, expected {release_id}")
    if telemetry.get("error"):
        return record("telemetry", False, f"trading loop error: {telemetry['error']}")
    last = telemetry.get("last_tick_ts")
    loaded = telemetry.get("loaded_at") or 0
    if last is None or last < loaded:
        return record("telemetry", False, "no tick yet on this release")
    age = now - float(last)
    if age > max_age_s:
        return record("telemetry", False, f"last tick {age:.1f}s ago (> {max_age_s:g}s)")
    return record("telemetry", True, f"last tick {age:.1f}s ago")
