"""Release rollback outside a deploy: `nettrace rollback [--to RELEASE]` and the `rollback` job.

Every region that runs a release goes back to its previous one (or, with `--to`, to that release),
in parallel; a region with nowhere to go is left as it is. Each region is verified (its node answers
and runs the release it was given) and recorded; the whole is one P1 alert and deploy-history
events. It takes the same lock as a deploy, so it never races one.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nettrace_dagster.deploy import REGIONS, DeployError
from nettrace_dagster.deploy.release import get_release
from nettrace_dagster.deploy.state import record, region_releases, set_region
from nettrace_dagster.settings import Settings, load_settings


def rollback_release(settings: Settings, to: str | None = None, controller: Any = None,
                     reason: str = "operator rollback") -> dict[str, Any]:
    from nettrace_dagster.coordinator.core import Coordinator
    from nettrace_dagster.deploy.controller import DeployController

    controller = controller or DeployController(settings)
    ledger = controller.ledger
    if to is not None:
        get_release(ledger, to)  # DeployError when there is no such release
    t0 = time.monotonic()
    state = region_releases(ledger)
    plan = {r: (state[r]["current"], to or state[r]["previous"]) for r in REGIONS if state[r]["current"]}
    plan = {r: (cur, dest) for r, (cur, dest) in plan.items() if dest and dest != cur}
    out: dict[str, Any] = {"ok": False, "to": to, "regions": [], "seconds": 0.0, "reasons": []}
    if not plan:
        out["reasons"] = ["nothing to roll back: no region has a previous release to return to"
                          if to is None else f"every deployed region already runs {to}"]
        out["ok"] = to is not None and any(state[r]["current"] for r in REGIONS)
        return out
    coordinator = Coordinator(ledger, settings.audit_dir)
    with coordinator.exclusive("deploy", "controller") as mine:
        if not mine:
            out["reasons"] = ["a deploy is running: roll back when it ends (or it rolls back by itself)"]
            return out
        lease = coordinator.begin("deploy", "rollback", ttl_s=600)
        if lease.status != "running":
            out["reasons"] = list(lease.reasons)
            return out
        try:
            def one(region: str) -> dict[str, Any]:
                cur, dest = plan[region]
                try:
                    controller.target.rollback(region, dest)
                    gate = controller.wait_healthy(region, dest, controller.timing.stage_timeout_s, 0.0)
                    ok, detail = gate.ok, "; ".join(gate.failed)
                except Exception as exc:  # noqa: BLE001 - reported per region
                    ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
                if ok:
                    set_region(ledger, region, dest, cur, "rolled_back")
                record(settings, "region_rollback", dest, "rollback", region, "rolled_back" if ok else "rollback_failed",
                       **{"from": cur, "to": dest, "detail": detail})
                return {"region": region, "from": cur, "to": dest, "ok": ok, "detail": detail}

            with ThreadPoolExecutor(max_workers=len(plan)) as pool:
                out["regions"] = list(pool.map(one, sorted(plan)))
        finally:
            coordinator.end(lease.activity_id)  # type: ignore[arg-type]
    out["seconds"] = round(time.monotonic() - t0, 3)
    out["ok"] = all(r["ok"] for r in out["regions"])
    record(settings, "rollback", to, "rollback", None, "done" if out["ok"] else "failed", seconds=out["seconds"],
           reason=reason, regions=[r["region"] for r in out["regions"]])
    controller.alert("P1", "Release rollback" + (" failed" if not out["ok"] else ""),
                     f"{reason}: " + ", ".join(f"{r['region']} {r['from']} → {r['to']}"
                                               + ("" if r["ok"] else f" FAILED ({r['detail']})") for r in out["regions"]))
    return out


def cli_rollback(args: argparse.Namespace) -> int:
    """`nettrace rollback [--to RELEASE] [--json]` for releases (the promotion CLI dispatches here).
    Exit 0 rolled back, 1 it failed or there was nothing to roll back, 2 an unknown release."""
    import json
    import sys

    settings = load_settings()
    try:
        out = rollback_release(settings, getattr(args, "to", None))
    except DeployError as exc:
        print(f"nettrace rollback: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(out, indent=2, default=str))
    else:
        print(("rolled back" if out["ok"] else "rollback failed") + f" in {out['seconds']:.1f}s")
        for r in out["regions"]:
            print(f"  {r['region']}: {r['from']} → {r['to']}" + ("" if r["ok"] else f"  FAILED: {r['detail']}"))
        for reason in out["reasons"]:
            print(f"  {reason}")
    return 0 if out["ok"] else 1


def rollback_main(to: str | None = None) -> dict[str, Any]:  # the rollback job's entry point
    return rollback_release(load_settings(), to, reason="rollback job")
