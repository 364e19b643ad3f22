"""The demo's deploy section: a release from the parameters in force, rolled out to local nodes
(canary → primary → full, every gate), the history shown, and no node left running — even when
something fails. Health windows are short here (seconds, not the production minutes) so the demo
stays quick; the gates themselves are the production ones."""

from __future__ import annotations

import random
import socket
import time
from typing import Any

from nettrace_dagster.deploy import REGIONS
from nettrace_dagster.settings import Settings

DEMO_STAGE_TIMEOUT_S = 45.0
DEMO_SOAK_S = 0.5
DEMO_PRIMARY_SOAK_S = 1.5


def free_ports(n: int) -> list[int]:
    """`n` loopback ports free now, drawn at random below Linux's ephemeral range (32768+): the
    kernel's own `bind(0)` hands the same just-released ports to processes asking at the same
    moment (two demos, two test workers), and outgoing connections take ephemeral ones. The node
    binds its port a moment later; `LocalTarget` checks that the node answering is its own."""
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 32_000)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def demo_section(settings: Settings, instance: Any = None) -> tuple[dict[str, Any], list[str]]:
    """`({"deploy": {"release", "status", "ok", "stages", "seconds", "history", "nodes_left_running"}},
    human lines)` — the payload's one key joins `nettrace demo --json`. A rollout that does not
    succeed raises (after the nodes are stopped): the demo then fails with its one-line reason."""
    out, lines = run_demo_deploy(settings)
    if not out.get("ok"):
        raise RuntimeError(f"release {out['release']} {out['status']}: {'; '.join(out.get('reasons', []))[:300]}")
    return {"deploy": out}, lines


def run_demo_deploy(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The rollout itself; every outcome is returned (nothing raised), with no node left running."""
    from nettrace_dagster.deploy.controller import DeployController, Timing
    from nettrace_dagster.deploy.release import create_release
    from nettrace_dagster.deploy.state import history
    from nettrace_dagster.deploy.targets import LocalTarget

    t0 = time.monotonic()
    target = LocalTarget(settings, ports=dict(zip(REGIONS, free_ports(len(REGIONS)), strict=True)))
    tick = float(settings.nettrace_node_tick_seconds)
    timing = Timing(DEMO_STAGE_TIMEOUT_S, DEMO_STAGE_TIMEOUT_S, DEMO_SOAK_S, DEMO_PRIMARY_SOAK_S,
                    float(settings.nettrace_deploy_http_timeout_s), max(float(settings.nettrace_telemetry_max_age_s),
                                                                         3 * tick))
    out: dict[str, Any] = {"release": None, "status": "error", "ok": False, "stages": [], "seconds": 0.0,
                           "history": []}
    try:
        release = create_release(settings=settings, source="demo")
        out["release"] = release.release_id
        result = DeployController(settings, target, timing=timing).deploy(release.release_id)
        out.update({"status": result.status, "ok": result.ok, "deploy_id": result.deploy_id,
                    "stages": [{"stage": s["stage"], "ok": s["ok"], "seconds": s["seconds"],
                                "regions": [r["region"] for r in s["regions"]]} for s in result.stages],
                    "reasons": result.reasons})
        out["history"] = [{k: e.get(k) for k in ("time", "event", "release", "stage", "region", "status", "seconds")}
                          for e in history(settings) if e.get("deploy_id") == result.deploy_id]
    except Exception as exc:  # noqa: BLE001 - the demo reports it; the nodes are stopped below regardless
        out["reasons"] = [f"{type(exc).__name__}: {exc}"[:300]]
    finally:
        target.stop_all()
        out["nodes_left_running"] = sorted(target.running())
        out["seconds"] = round(time.monotonic() - t0, 2)
    lines = [f"deploy: release {out['release']} {out['status']} in {out['seconds']:.1f}s (local nodes, "
             f"{len(REGIONS)} regions; all stopped afterwards)"]
    lines += [f"  {s['stage']:<8} {'passed' if s['ok'] else 'FAILED'} in {s['seconds']:.1f}s  ({', '.join(s['regions'])})"
              for s in out["stages"]]
    lines += [f"  {r}" for r in out.get("reasons", [])]
    lines.append(f"  deploy history: {len(out['history'])} event(s) (nettrace deploy history)")
    return out, lines
