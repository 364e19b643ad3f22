"""Staged deploys against real local node processes, chaos included: a healthy rollout, a canary
killed (SIGKILL) mid-deploy, a node that stops answering (SIGSTOP) → timeout, positions that
disagree with the ledger, a primary failure, a full-stage failure, and the node token.

One set of seven node processes serves the whole module (starting them is the slow part); every
test rolls out its own release (its own parameters) over the state the tests before it left."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from nettrace_dagster.deploy import CANARY, FULL, PRIMARY, REGIONS
from nettrace_dagster.deploy.controller import DeployController, Timing
from nettrace_dagster.deploy.demo import free_ports
from nettrace_dagster.deploy.positions import driver_of
from nettrace_dagster.deploy.release import create_release
from nettrace_dagster.deploy.state import history, region_releases
from nettrace_dagster.deploy.targets import LocalTarget, node_token
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.settings import Settings, load_settings

# The tests build on each other's state and share one set of nodes: one xdist worker runs the whole
# file, in order (--dist loadfile); as a unit it takes ~25 s.
pytestmark = pytest.mark.slow(seconds=25)

TIMING = Timing(stage_timeout_s=3.0, primary_timeout_s=3.0, soak_s=0.3, primary_soak_s=0.6, http_timeout_s=0.6,
                max_age_s=10.0, interval_s=0.2)


class ChaosTarget(LocalTarget):
    """The local target, plus a real fault done to a region's real node right after its release is
    loaded (before any health gate looks): SIGKILL, SIGSTOP, or a callable."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.faults: dict[str, object] = {}
        self.deployed: list[tuple[str, str]] = []

    def deploy(self, region: str, release_id: str) -> None:
        super().deploy(region, release_id)
        self.deployed.append((region, release_id))
        fault = self.faults.pop(region, None)
        if isinstance(fault, int):
            os.killpg(self.pid(region), fault)  # type: ignore[arg-type]
        elif callable(fault):
            fault(region)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("deploy") / "home"
    env = {"NETTRACE_HOME": str(home), "NETTRACE_SYMBOLS": "BTC-USDT", "NETTRACE_NODE_TICK_SECONDS": "2",
           "NETTRACE_NODE_TOKEN": "test-node-token-0123456789"}
    saved = {k: os.environ.get(k) for k in [*env, "NETTRACE_LEDGER_URL", "DAGSTER_HOME"]}
    os.environ.update(env)
    os.environ.pop("NETTRACE_LEDGER_URL", None)
    settings = load_settings()
    stored = settings.lake_dir / "candles" / "BTC-USDT.parquet"  # what the candles asset leaves
    stored.parent.mkdir(parents=True)
    simulate("BTC-USDT", 1500, seed=7).write_parquet(stored)
    # nrt ticks only when a release is loaded: a change behind its back stays visible to the gate
    target = ChaosTarget(settings, ports=dict(zip(REGIONS, free_ports(len(REGIONS)), strict=True)),
                         env_overrides={"nrt": {"NETTRACE_NODE_TICK_SECONDS": "120"}}, http_timeout_s=0.6)
    alerts: list[tuple[str, str, str]] = []
    controller = DeployController(settings, target, timing=TIMING, alert=lambda *a: alerts.append(a))
    try:
        yield {"settings": settings, "target": target, "controller": controller, "alerts": alerts}
    finally:
        target.stop_all()
        assert target.running() == {}, "a node was left running"
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def release_with(settings: Settings, fast: int) -> str:
    return create_release({"strategies": {"sma_cross": {"fast": fast, "slow": 30}, "momentum": {}}},
                          settings=settings).release_id


def telemetry(target: LocalTarget, region: str) -> dict:
    return httpx.get(target.endpoint(region)[1] + "/telemetry", timeout=5).json()


def ticked_on_its_release(target: LocalTarget, region: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        t = telemetry(target, region)
        if t["last_tick_ts"] is not None and t["last_tick_ts"] >= t["loaded_at"]:
            return
        assert time.monotonic() < deadline, t
        time.sleep(0.05)


def stop_when_idle(target: LocalTarget):  # noqa: ANN201
    """SIGSTOP a node between ticks: it keeps its socket open and never answers again. (Stopped
    mid-tick it would hold the SQLite ledger's write lock, and hang every writer: that is a
    property of one SQLite file shared by processes, not of the gates tested here.)"""
    def fault(region: str) -> None:
        ticked_on_its_release(target, region)
        os.killpg(target.pid(region), signal.SIGSTOP)
    return fault


def current(settings: Settings) -> dict[str, str | None]:
    return {r: v["current"] for r, v in region_releases(ledger_of(settings)).items()}


def test_1_healthy_rollout_end_to_end(world: dict) -> None:
    s, target, controller = world["settings"], world["target"], world["controller"]
    rid = release_with(s, 10)
    result = controller.deploy(rid)
    assert result.status == "succeeded", result.as_dict()
    assert [st["stage"] for st in result.stages] == ["canary", "primary", "full"]
    assert [tuple(r["region"] for r in st["regions"]) for st in result.stages] == [CANARY, (PRIMARY,), FULL]
    assert current(s) == dict.fromkeys(REGIONS, rid)
    tele = {r: telemetry(target, r) for r in REGIONS}
    assert {t["release"] for t in tele.values()} == {rid}
    assert tele[PRIMARY]["account"] == "main" and tele[PRIMARY]["orders_for_account"] is True
    assert {tele[r]["account"] for r in REGIONS if r != PRIMARY} == {f"paper-{r}" for r in REGIONS if r != PRIMARY}
    assert driver_of(ledger_of(s), "main", ).startswith("node:ewr")  # trading_tick stands down
    events = [e for e in history(s) if e.get("deploy_id") == result.deploy_id]
    assert events[0]["event"] == "deploy_started" and events[-1]["event"] == "deploy_finished"
    healthy = [e["region"] for e in events if e["event"] == "region_health" and e["status"] == "healthy"]
    assert sorted(healthy) == sorted(REGIONS)
    checks = {e["region"]: e["checks"] for e in events if e["event"] == "region_health"}
    assert set(checks["lhr"]) == {"dns", "http", "telemetry", "reconciliation"}
    assert set(checks[PRIMARY]) == {"dns", "http", "telemetry", "reconciliation", "driver"}  # extended
    assert events[-1]["seconds"] > 0 and result.seconds > 0
    full = [e for e in events if e["event"] == "region_health" and e["stage"] == "full"]
    assert full and all(isinstance(e["divergence_vs_primary"], float) for e in full)


def test_2_release_load_without_the_token_is_refused(world: dict) -> None:
    s, target = world["settings"], world["target"]
    url = target.endpoint("lhr")[1] + "/release"
    before = telemetry(target, "lhr")["release"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": node_token(s)}):
        assert httpx.post(url, json={"release": before}, headers=headers, timeout=5).status_code == 401
    ok = httpx.post(url, json={"release": before}, headers={"Authorization": f"Bearer {node_token(s)}"}, timeout=5)
    assert ok.status_code == 200
    missing = httpx.post(url, json={"release": "r-nope"}, headers={"Authorization": f"Bearer {node_token(s)}"},
                         timeout=5)
    assert missing.status_code == 404 and telemetry(target, "lhr")["release"] == before
    token = node_token(s)  # secret: in no node log, no audit line
    written = [p.read_text() for p in [*(s.home / "nodes").glob("*.log"), *s.audit_dir.glob("*.jsonl")]]
    assert written and not any(token in text for text in written)


def test_3_canary_killed_mid_deploy_is_rolled_back(world: dict) -> None:
    s, target, controller, alerts = world["settings"], world["target"], world["controller"], world["alerts"]
    old = current(s)
    killed = target.pid("lhr")
    target.faults["lhr"] = signal.SIGKILL
    rid = release_with(s, 11)
    result = controller.deploy(rid)
    assert result.status == "rolled_back" and result.failed_regions == ["lhr"]
    assert result.rolled_back == list(sorted(CANARY)) and len(result.stages) == 1  # primary never touched
    assert current(s) == old
    assert target.pid("lhr") not in (None, killed)  # a fresh process, on the old release
    assert telemetry(target, "lhr")["release"] == old["lhr"] and telemetry(target, "nrt")["release"] == old["nrt"]
    assert telemetry(target, PRIMARY)["release"] == old[PRIMARY]
    assert (PRIMARY, rid) not in target.deployed
    assert any(a[0] == "P1" and "rolled back" in a[1] for a in alerts)


def test_4_slow_node_times_out_and_is_rolled_back(world: dict) -> None:
    s, target, controller = world["settings"], world["target"], world["controller"]
    old = current(s)
    target.faults["nrt"] = stop_when_idle(target)  # alive, listening, never answering
    t0 = time.monotonic()
    result = controller.deploy(release_with(s, 12))
    assert result.status == "rolled_back" and result.failed_regions == ["nrt"]
    detail = result.stages[0]["regions"][1]["detail"]
    assert "no answer within" in detail, detail
    assert time.monotonic() - t0 < 30
    assert current(s) == old and telemetry(target, "nrt")["release"] == old["nrt"]


def test_5_positions_disagreeing_with_the_ledger_fail_the_gate(world: dict) -> None:
    from nettrace_dagster.ledger.models import Position

    s, target, controller = world["settings"], world["target"], world["controller"]
    old = current(s)

    def write_behind_its_back(region: str) -> None:
        ticked_on_its_release(target, region)
        with ledger_of(s).tx() as session:  # another writer trades nrt's account
            session.add(Position(account="paper-nrt", strategy="rogue", symbol="BTC-USDT", qty=0.5, cost=1.0,
                                 updated_at=time.time()))

    target.faults["nrt"] = write_behind_its_back
    result = controller.deploy(release_with(s, 13))
    assert result.status == "rolled_back" and result.failed_regions == ["nrt"]
    detail = result.stages[0]["regions"][1]["detail"]
    assert detail.startswith("reconciliation:") and "rogue/BTC-USDT: node 0, ledger 0.5" in detail
    assert current(s) == old


def test_6_primary_failure_rolls_back_every_touched_region(world: dict) -> None:
    s, target, controller = world["settings"], world["target"], world["controller"]
    old = current(s)
    target.faults[PRIMARY] = signal.SIGKILL
    rid = release_with(s, 14)
    result = controller.deploy(rid)
    assert result.status == "rolled_back" and result.failed_regions == [PRIMARY]
    assert sorted(result.rolled_back) == sorted([*CANARY, PRIMARY])
    assert current(s) == old
    for region in (*CANARY, PRIMARY):
        assert telemetry(target, region)["release"] == old[region]
    assert not any(region in FULL for region, r in target.deployed if r == rid)


def test_7_full_stage_failure_alerts_without_rollback(world: dict) -> None:
    s, target, controller, alerts = world["settings"], world["target"], world["controller"], world["alerts"]
    target.faults["bom"] = stop_when_idle(target)
    rid = release_with(s, 15)
    n = len(alerts)
    result = controller.deploy(rid)
    assert result.status == "partial" and result.failed_regions == ["bom"] and result.rolled_back == []
    states = region_releases(ledger_of(s))
    assert {r: v["current"] for r, v in states.items()} == dict.fromkeys(REGIONS, rid)
    assert states["bom"]["status"] == "failed"
    assert [a for a in alerts[n:] if a[0] == "P1"][0][1] == f"Deploy {rid}: full-stage region(s) failed"
    os.killpg(target.pid("bom"), signal.SIGCONT)


def test_8_rollback_command_returns_every_region_to_its_previous_release(world: dict) -> None:
    import argparse

    from nettrace_dagster.deploy.rollback import cli_rollback, rollback_release

    s, target, controller = world["settings"], world["target"], world["controller"]
    before = region_releases(ledger_of(s))
    t0 = time.monotonic()
    out = rollback_release(s, controller=controller)
    assert out["ok"], out
    assert time.monotonic() - t0 < 10
    after = current(s)
    assert after == {r: before[r]["previous"] for r in REGIONS}
    assert {telemetry(target, r)["release"] for r in REGIONS} == set(after.values())
    assert cli_rollback(argparse.Namespace(to="r-doesnotexist", json=True)) == 2
