"""The deploy controller: pre-deploy gate → canary (`lhr`, `nrt`) → primary (`ewr`, extended
health validation) → full (`ord`, `fra`, `sin`, `bom`), regions of a stage in parallel.

After each stage every region's health gates (health.py) must pass within the stage's timeout and
keep passing for its soak time. A failed canary rolls the canary back; a failed primary rolls back
every region touched; a failed full-stage region is alerted and left as it is. One deploy at a
time (the coordinator's `deploy` activity, under a process lock that dies with its holder, so a
killed deploy never blocks the next); while it runs, optimizations are queued. Every step is an
event in the deploy history; stages and the total are timed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nettrace_dagster.deploy import CANARY, FULL, PRIMARY, REGIONS
from nettrace_dagster.deploy.gate import GateReport, predeploy_gate
from nettrace_dagster.deploy.health import GateResult, check_region
from nettrace_dagster.deploy.node import account_of
from nettrace_dagster.deploy.release import ReleaseInfo, get_release
from nettrace_dagster.deploy.state import record, region_releases, set_region, set_status
from nettrace_dagster.deploy.targets import Target, TargetError, make_target
from nettrace_dagster.ledger.db import Ledger, ledger_of
from nettrace_dagster.settings import Settings

Alert = Callable[[str, str, str], None]


@dataclass
class Timing:
    stage_timeout_s: float
    primary_timeout_s: float
    soak_s: float
    primary_soak_s: float
    http_timeout_s: float
    max_age_s: float
    interval_s: float = 0.5

    @classmethod
    def from_settings(cls, s: Settings) -> Timing:
        return cls(float(s.nettrace_deploy_stage_timeout_s), float(s.nettrace_deploy_primary_timeout_s),
                   float(s.nettrace_deploy_soak_s), float(s.nettrace_deploy_primary_soak_s),
                   float(s.nettrace_deploy_http_timeout_s), float(s.nettrace_telemetry_max_age_s))


@dataclass
class DeployResult:
    deploy_id: str
    release: str
    status: str  # succeeded | partial (a full-stage region failed) | rolled_back | gate_failed | refused
    stages: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    failed_regions: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "partial")

    def as_dict(self) -> dict[str, Any]:
        return {"deploy_id": self.deploy_id, "release": self.release, "status": self.status, "ok": self.ok,
                "seconds": round(self.seconds, 2), "stages": self.stages, "failed_regions": self.failed_regions,
                "rolled_back": self.rolled_back, "gate": self.gate, "reasons": self.reasons}


def _default_alert(settings: Settings) -> Alert:
    from nettrace_dagster.notify import alert

    return lambda sev, title, text: alert(sev, title, text, settings)


class DeployController:
    def __init__(self, settings: Settings, target: Target | None = None, ledger: Ledger | None = None,
                 timing: Timing | None = None, alert: Alert | None = None,
                 predeploy: Callable[[ReleaseInfo, Settings], GateReport] = predeploy_gate) -> None:
        self.settings = settings
        self.target = target or make_target(settings)
        self.ledger = ledger or ledger_of(settings)
        self.timing = timing or Timing.from_settings(settings)
        self.alert = alert or _default_alert(settings)
        self.predeploy = predeploy

    # --- health -------------------------------------------------------------------------------
    def check(self, region: str, release_id: str) -> GateResult:
        """The region's gates; the primary's extended validation adds one: it drives the account
        (its node holds the driver lease, so `trading_tick` has stood down — one driver)."""
        from nettrace_dagster.deploy.positions import driver_of

        host, url = self.target.endpoint(region)
        account = account_of(region, self.settings)
        result = check_region(region, url, host, release_id, self.ledger, account,
                              self.timing.http_timeout_s, self.timing.max_age_s)
        if result.ok and region == PRIMARY:
            holder = driver_of(self.ledger, account)
            ok = bool(holder) and holder.startswith(f"node:{PRIMARY}:")  # type: ignore[union-attr]
            result.checks["driver"] = {"ok": ok, "detail": f"{account} driven by {holder or 'nobody'}"}
            result.ok = ok
        return result

    def wait_healthy(self, region: str, release_id: str, timeout_s: float, soak_s: float) -> GateResult:
        """Gates pass within `timeout_s`, then keep passing for `soak_s`; the first failure after
        passing fails at once (a node that dies mid-soak is not waited for), and so does a local
        node that nothing listens for any more (it was loaded: it died)."""
        deadline, passed_at = time.monotonic() + timeout_s, None
        while True:
            result = self.check(region, release_id)
            now = time.monotonic()
            if result.ok:
                passed_at = passed_at if passed_at is not None else now
                if now - passed_at >= soak_s:
                    return result
            elif passed_at is not None or now >= deadline or (result.refused and self.target.name == "local"):
                if not result.failed:
                    result.checks["timeout"] = {"ok": False, "detail": f"gates did not pass within {timeout_s:g}s"}
                return result
            time.sleep(self.timing.interval_s)

    def divergence(self, telemetry: dict[str, Any]) -> float | None:
        """The node's return on its capital minus the primary's (a health signal, recorded: paper
        regions start fresh, so a gap is expected; a growing one says the release behaves
        differently there). None when either side has no figures."""
        import httpx

        try:
            primary = httpx.get(self.target.endpoint(PRIMARY)[1] + "/telemetry",
                                timeout=self.timing.http_timeout_s).json()
            mine = telemetry["pnl"] / telemetry["principal"]
            theirs = primary["pnl"] / primary["principal"]
        except Exception:  # noqa: BLE001 - no primary yet, or no tick: nothing to compare
            return None
        return round(mine - theirs, 6)

    # --- one stage ----------------------------------------------------------------------------
    def _region(self, ctx: dict[str, Any], stage: str, region: str, timeout_s: float, soak_s: float) -> dict[str, Any]:
        rid, t0 = ctx["release"], time.monotonic()
        before = ctx["before"][region]
        ctx["touched"][region] = before
        record(self.settings, "region_deploy", rid, stage, region, "started", deploy_id=ctx["id"],
               previous=before["current"])
        try:
            self.target.deploy(region, rid)
            set_region(self.ledger, region, rid, before["current"], "deploying")
            gate = self.wait_healthy(region, rid, timeout_s, soak_s)
            ok, detail, checks = gate.ok, "; ".join(gate.failed), gate.checks
        except TargetError as exc:
            ok, detail, checks = False, str(exc), {}
        except Exception as exc:  # noqa: BLE001 - a bug in one region's deploy fails that region, not the run
            ok, detail, checks = False, f"{type(exc).__name__}: {exc}", {}
        seconds = time.monotonic() - t0
        extra = {}
        if ok and region != PRIMARY:
            extra["divergence_vs_primary"] = self.divergence(gate.telemetry)
        record(self.settings, "region_health", rid, stage, region, "healthy" if ok else "unhealthy",
               deploy_id=ctx["id"], seconds=round(seconds, 3), detail=detail, checks=checks, **extra)
        if ok:
            set_status(self.ledger, region, "running")
        return {"region": region, "ok": ok, "seconds": round(seconds, 3), "detail": detail}

    def _stage(self, ctx: dict[str, Any], stage: str, regions: tuple[str, ...], timeout_s: float,
               soak_s: float) -> dict[str, Any]:
        t0 = time.monotonic()
        record(self.settings, "stage_started", ctx["release"], stage, None, "started", deploy_id=ctx["id"],
               regions=list(regions))
        with ThreadPoolExecutor(max_workers=len(regions)) as pool:
            results = list(pool.map(lambda r: self._region(ctx, stage, r, timeout_s, soak_s), regions))
        ok = all(r["ok"] for r in results)
        seconds = time.monotonic() - t0
        record(self.settings, "stage_finished", ctx["release"], stage, None, "passed" if ok else "failed",
               deploy_id=ctx["id"], seconds=round(seconds, 3), regions=results)
        return {"stage": stage, "ok": ok, "seconds": round(seconds, 3), "regions": results}

    # --- rollback -----------------------------------------------------------------------------
    def rollback_regions(self, ctx: dict[str, Any], stage: str, reason: str) -> list[str]:
        """Every touched region back on what it ran before this deploy (nothing: its node stops)."""
        touched = dict(ctx["touched"])
        t0 = time.monotonic()

        def one(region: str) -> str | None:
            before = touched[region]
            try:
                self.target.rollback(region, before["current"])
                set_region(self.ledger, region, before["current"], before["previous"],
                           "rolled_back" if before["current"] else "empty")
                record(self.settings, "region_rollback", ctx["release"], stage, region, "rolled_back",
                       deploy_id=ctx["id"], to=before["current"])
                return None
            except Exception as exc:  # noqa: BLE001
                record(self.settings, "region_rollback", ctx["release"], stage, region, "rollback_failed",
                       deploy_id=ctx["id"], to=before["current"], detail=str(exc)[:300])
                return f"{region}: {exc}"

        with ThreadPoolExecutor(max_workers=max(1, len(touched))) as pool:
            problems = [p for p in pool.map(one, sorted(touched)) if p]
        seconds = time.monotonic() - t0
        record(self.settings, "rollback", ctx["release"], stage, None, "failed" if problems else "done",
               deploy_id=ctx["id"], regions=sorted(touched), seconds=round(seconds, 3), reason=reason)
        self.alert("P1", f"Deploy {ctx['release']} rolled back ({stage} failed)",
                   f"{reason}. Regions back on their previous release: {', '.join(sorted(touched))}"
                   + (f". Rollback problems: {'; '.join(problems)}" if problems else ""))
        ctx["rollback_seconds"] = round(seconds, 3)
        return sorted(touched)

    # --- the deploy ---------------------------------------------------------------------------
    def deploy(self, release_id: str) -> DeployResult:
        from nettrace_dagster.coordinator.core import Coordinator

        release = get_release(self.ledger, release_id)
        deploy_id = f"d-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        result = DeployResult(deploy_id, release_id, "refused")
        coordinator = Coordinator(self.ledger, self.settings.audit_dir)
        t = self.timing
        ttl = t.stage_timeout_s * 2 + t.primary_timeout_s + t.soak_s * 2 + t.primary_soak_s + 600
        with coordinator.exclusive("deploy", "controller") as mine:
            if not mine:
                result.reasons = ["another deploy is running (its controller holds the deploy lock)"]
                record(self.settings, "deploy_refused", release_id, "deploy", None, "refused", deploy_id=deploy_id,
                       reason=result.reasons[0])
                return result
            lease = coordinator.begin("deploy", f"deploy:{release_id}", ttl_s=ttl)
            if lease.status != "running":
                result.reasons = list(lease.reasons)
                record(self.settings, "deploy_refused", release_id, "deploy", None, "refused", deploy_id=deploy_id,
                       reason="; ".join(lease.reasons))
                return result
            try:
                return self._deploy(release, result)
            finally:
                coordinator.end(lease.activity_id)  # type: ignore[arg-type]

    def _deploy(self, release: ReleaseInfo, result: DeployResult) -> DeployResult:
        rid, t0 = release.release_id, time.monotonic()
        record(self.settings, "deploy_started", rid, "deploy", None, "started", deploy_id=result.deploy_id,
               target=self.target.name)
        prepare = getattr(self.target, "prepare", None)
        booting = None
        if prepare is not None:  # nodes boot while the gate runs; none is given the release before it passes
            import threading

            booting = threading.Thread(target=prepare, args=(REGIONS,), name="deploy-prepare", daemon=True)
            booting.start()
        try:
            gate = self.predeploy(release, self.settings)
            result.gate = gate.as_dict()
            record(self.settings, "predeploy_gate", rid, "gate", None, "passed" if gate.passed else "failed",
                   deploy_id=result.deploy_id, problems=gate.problems, seconds=round(time.monotonic() - t0, 3))
            if not gate.passed:
                result.status, result.reasons = "gate_failed", gate.problems
                self.alert("P1", f"Deploy {rid} stopped by the pre-deploy gate", "; ".join(gate.problems)[:1000])
                return result
            if booting is not None:
                booting.join()
            ctx: dict[str, Any] = {"id": result.deploy_id, "release": rid, "touched": {},
                                   "before": region_releases(self.ledger)}
            t = self.timing
            for stage, regions, timeout_s, soak_s in (("canary", CANARY, t.stage_timeout_s, t.soak_s),
                                                      ("primary", (PRIMARY,), t.primary_timeout_s, t.primary_soak_s),
                                                      ("full", FULL, t.stage_timeout_s, t.soak_s)):
                outcome = self._stage(ctx, stage, regions, timeout_s, soak_s)
                result.stages.append(outcome)
                failed = [r for r in outcome["regions"] if not r["ok"]]
                result.failed_regions += [r["region"] for r in failed]
                why = "; ".join(f"{r['region']}: {r['detail']}" for r in failed)
                if failed and stage in ("canary", "primary"):
                    if stage == "canary":  # only the canary was touched
                        ctx["touched"] = {r: v for r, v in ctx["touched"].items() if r in CANARY}
                    result.rolled_back = self.rollback_regions(ctx, stage, f"{stage} failed: {why}")
                    result.status, result.reasons = "rolled_back", [why]
                    result.stages[-1]["rollback_seconds"] = ctx.get("rollback_seconds")
                    return result
                if failed:  # full stage: alert, no rollback
                    for r in failed:
                        set_status(self.ledger, r["region"], "failed")
                    self.alert("P1", f"Deploy {rid}: full-stage region(s) failed",
                               f"{why}. No rollback (full stage); the other regions run {rid}.")
                    result.status, result.reasons = "partial", [why]
                else:
                    self.alert("P3" if stage != "full" else "P2", f"Deploy {rid}: {stage} stage passed",
                               f"{', '.join(regions)} healthy in {outcome['seconds']:.1f}s")
            if result.status == "refused":
                result.status = "succeeded"
            return result
        except Exception as exc:
            result.status, result.reasons = "error", [f"{type(exc).__name__}: {exc}"]
            self.alert("P1", f"Deploy {rid} crashed", result.reasons[0][:500])
            raise
        finally:
            if booting is not None:
                booting.join()
                stop_idle = getattr(self.target, "stop_idle", None)
                if stop_idle is not None:
                    stop_idle({r: v["current"] for r, v in region_releases(self.ledger).items()})
            result.seconds = time.monotonic() - t0
            record(self.settings, "deploy_finished", rid, "deploy", None, result.status,
                   deploy_id=result.deploy_id, seconds=round(result.seconds, 3),
                   failed_regions=result.failed_regions, rolled_back=result.rolled_back)


def deploy_status(settings: Settings, ledger: Ledger | None = None) -> dict[str, Any]:
    from nettrace_dagster.deploy.positions import driver_of
    from nettrace_dagster.deploy.state import history

    ledger = ledger or ledger_of(settings)
    regions = region_releases(ledger)
    events = history(settings)
    last = next((e for e in reversed(events) if e.get("event") == "deploy_finished"), None)
    started = {e.get("deploy_id") for e in events if e.get("event") == "deploy_started"}
    finished = {e.get("deploy_id") for e in events if e.get("event") == "deploy_finished"}
    running = sorted(started - finished)
    pids: dict[str, int] = {}
    if settings.nettrace_deploy_target == "local":
        from nettrace_dagster.deploy.targets import LocalTarget

        pids = LocalTarget(settings).running()
    return {
        "target": settings.nettrace_deploy_target,
        "regions": [{**regions[r], "role": _role(r), "node_pid": pids.get(r)} for r in REGIONS],
        "driver": driver_of(ledger, account_of(PRIMARY, settings)),
        "last_deploy": last, "unfinished_deploys": running,
    }


def _role(region: str) -> str:
    from nettrace_dagster.deploy import ROLES

    return ROLES[region]
