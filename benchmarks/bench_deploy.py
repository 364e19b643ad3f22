"""Local staged rollout and rollback, wall time per stage, against real node processes.

    python benchmarks/bench_deploy.py [--soak 1] [--primary-soak 2] [--tick 1] [--json]

A fresh NETTRACE_HOME (temporary), lake candles for the default symbols, then:
1. release A rolled out from nothing: gate (+ node boots in parallel) → canary → primary → full;
2. release B rolled out over A (nodes already running: only loads and gates);
3. `nettrace rollback` (every region back to A);
4. release C with the canary killed (SIGKILL) right after loading: the automatic canary rollback.
Goals (issue 12): a healthy local rollout ≤ 60 s, a rollback ≤ 10 s, on 2 cores. Soak times are
the health windows a stage must stay green for (production defaults: 10 s, primary 60 s), so
they are parameters here and reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soak", type=float, default=1.0)
    ap.add_argument("--primary-soak", type=float, default=2.0)
    ap.add_argument("--tick", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nettrace-bench-deploy-")) / "home"
    os.environ.update({"NETTRACE_HOME": str(home), "NETTRACE_NODE_TICK_SECONDS": str(args.tick)})
    os.environ.pop("NETTRACE_LEDGER_URL", None)

    from nettrace_dagster.deploy import CANARY, REGIONS
    from nettrace_dagster.deploy.controller import DeployController, Timing
    from nettrace_dagster.deploy.demo import free_ports
    from nettrace_dagster.deploy.release import create_release
    from nettrace_dagster.deploy.rollback import rollback_release
    from nettrace_dagster.deploy.targets import LocalTarget
    from nettrace_dagster.market.sim import simulate
    from nettrace_dagster.settings import load_settings

    settings = load_settings()
    for symbol in settings.symbols:  # what the candles asset leaves in the lake
        path = settings.lake_dir / "candles" / f"{symbol}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        simulate(symbol, 3000, seed=7).write_parquet(path)

    class Chaos(LocalTarget):
        victim: str | None = None

        def deploy(self, region: str, release_id: str) -> None:
            super().deploy(region, release_id)
            if region == self.victim:
                self.victim = None
                os.killpg(self.pid(region), signal.SIGKILL)

    target = Chaos(settings, ports=dict(zip(REGIONS, free_ports(len(REGIONS)), strict=True)))
    timing = Timing(60, 600, args.soak, args.primary_soak, float(settings.nettrace_deploy_http_timeout_s),
                    float(settings.nettrace_telemetry_max_age_s))
    controller = DeployController(settings, target, timing=timing, alert=lambda *a: None)

    def rollout(fast: int) -> dict:
        rel = create_release({"strategies": {"sma_cross": {"fast": fast, "slow": 30}, "momentum": {},
                                             "mean_reversion": {}}}, settings=settings)
        result = controller.deploy(rel.release_id)
        out = {"status": result.status, "total_s": round(result.seconds, 2)}
        for stage in result.stages:
            out[f"{stage['stage']}_s"] = stage["seconds"]
            if stage.get("rollback_seconds") is not None:
                out["rollback_s"] = stage["rollback_seconds"]
        out["gate_and_boot_s"] = round(result.seconds - sum(s["seconds"] for s in result.stages)
                                       - out.get("rollback_s", 0), 2)
        return out

    figures: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
                     "date": time.strftime("%Y-%m-%d"), "soak_s": args.soak, "primary_soak_s": args.primary_soak,
                     "tick_s": args.tick, "load_avg_at_start": round(os.getloadavg()[0], 2)}
    try:
        figures["cold_rollout"] = rollout(10)
        figures["warm_rollout"] = rollout(11)
        t0 = time.monotonic()
        rb = rollback_release(settings, controller=controller)
        figures["rollback_command"] = {"ok": rb["ok"], "regions": len(rb["regions"]),
                                       "seconds": round(time.monotonic() - t0, 2)}
        target.victim = CANARY[0]
        figures["canary_killed"] = rollout(12)
    finally:
        target.stop_all()
        figures["nodes_left_running"] = sorted(target.running())
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
