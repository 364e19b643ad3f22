"""Releases (content-derived ids, immutable), the pre-deploy gate (a failing release reaches no
node), the deploy sensor (one release, one run key), the fly target against a fake flyctl, the
trading sensor standing down under a node's lease, and the release/deploy commands."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import types
from pathlib import Path

import pytest

from nettrace_dagster.deploy import REGIONS, DeployError
from nettrace_dagster.deploy.controller import DeployController, Timing
from nettrace_dagster.deploy.gate import GateReport, predeploy_gate
from nettrace_dagster.deploy.release import canonical, create_release, get_release, releases_in_force
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.settings import Settings, load_settings

FAKE_FLYCTL = Path(__file__).parent / "fakes" / "flyctl.py"
PARAMS = {"portfolio": {"tp0": 0.01}, "strategies": {"sma_cross": {"fast": 8, "slow": 40}}}


def test_release_id_is_derived_from_its_content(settings: Settings) -> None:
    from nettrace_dagster.strategies.builtin import SmaCross

    a = create_release(PARAMS, settings=settings)
    assert a.new and a.release_id.startswith("r-")
    assert a.strategies["sma_cross"]["code_sha256"] == hashlib.sha256(inspect.getsource(SmaCross).encode()).hexdigest()
    # the id is the sha256 of the canonical content (an independent recomputation)
    assert a.release_id == "r-" + hashlib.sha256(json.dumps(a.content, sort_keys=True, separators=(",", ":"))
                                                 .encode()).hexdigest()[:16]
    again = create_release(json.loads(json.dumps(PARAMS)), settings=settings)
    assert again.release_id == a.release_id and not again.new
    other = create_release({**PARAMS, "strategies": {"sma_cross": {"fast": 9, "slow": 40}}}, settings=settings)
    assert other.release_id != a.release_id
    tightened = create_release(PARAMS, settings=load_settings({**os.environ, "NETTRACE_RULE_MAX_DRAWDOWN": "0.2"}))
    assert tightened.release_id != a.release_id  # the rules version is part of the content
    assert tightened.content["rules"]["max_drawdown"] == 0.2
    assert get_release(ledger_of(settings), a.release_id).content == a.content
    assert [rid for _, rid in releases_in_force(ledger_of(settings))] == [a.release_id, a.release_id,
                                                                          other.release_id, tightened.release_id]


def test_default_release_is_the_parameters_in_force_and_file_strategies_hash_their_file(
        settings: Settings, tmp_path: Path) -> None:
    from nettrace_dagster.paramsets import in_force
    from nettrace_dagster.paramsets.schema import default_param_set

    # Before any promotion the set in force is the defaults; after one, the promoted set.
    assert create_release(settings=settings).params == default_param_set()
    tuned = default_param_set()
    tuned["strategies"]["sma_cross"]["fast"] = 7
    tuned["portfolio"]["trailing_stop"] = 0.01
    with ledger_of(settings).tx() as s:
        in_force.activate_in(s, tuned, by="test", reason="promoted")
    assert create_release(settings=settings).params == tuned
    file = tmp_path / "mine.py"
    file.write_text("# a strategy file\n")
    info = create_release({"strategies": {"mine": {}}}, {"mine": file}, settings=settings)
    assert info.strategies["mine"] == {"kind": "file", "path": str(file.resolve()),
                                       "code_sha256": hashlib.sha256(b"# a strategy file\n").hexdigest()}
    with pytest.raises(DeployError, match="neither built-in"):
        create_release({"strategies": {"nope": {}}}, settings=settings)
    with pytest.raises(DeployError, match="no release"):
        get_release(ledger_of(settings), "r-0000")


def test_gate_refuses_changed_code_invalid_files_and_broken_params(settings: Settings, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.market.sim import simulate

    candles = {"BTC-USDT": simulate("BTC-USDT", 400, seed=3)}
    good = create_release(PARAMS, settings=settings)
    report = predeploy_gate(good, settings, candles)
    assert report.passed and "sma_cross on BTC-USDT: smoke backtest" in " ".join(report.checked)
    # a built-in whose code changed since the release was made
    tampered = get_release(ledger_of(settings), good.release_id)
    tampered.content["strategies"]["sma_cross"]["code_sha256"] = "0" * 64
    assert predeploy_gate(tampered, settings, candles).problems == [
        "sma_cross: built-in code differs from the release's code hash"]
    # parameters the strategy cannot run with fail the smoke backtest
    broken = create_release({"strategies": {"sma_cross": {"fast": "ten"}}}, settings=settings)
    bad = predeploy_gate(broken, settings, candles)
    assert not bad.passed and "smoke backtest failed" in bad.problems[0]
    # a file strategy goes through the validation layers again
    file = tmp_path / "s.py"
    file.write_text("x = 1\n")
    seen = []
    fake = types.ModuleType("nettrace_dagster.validation")
    fake.validate_file = lambda p: (seen.append(p), types.SimpleNamespace(  # type: ignore[attr-defined]
        passed=False, layers=[{"name": "security", "passed": False, "errors": ["imports os"]}]))[1]
    monkeypatch.setitem(sys.modules, "nettrace_dagster.validation", fake)
    rel = create_release({"strategies": {"s": {}}}, {"s": file}, settings=settings)
    report = predeploy_gate(rel, settings, candles)
    assert seen == [str(file.resolve())]
    assert report.problems == [f"{file.resolve()}: validation layer security failed: imports os"]


def test_a_release_failing_the_gate_never_reaches_a_node(settings: Settings) -> None:
    class Recorder:
        name = "local"
        calls: list[tuple] = []

        def endpoint(self, region: str) -> tuple[str, str]:
            return "localhost", "http://127.0.0.1:9"

        def deploy(self, region: str, release_id: str) -> None:
            self.calls.append(("deploy", region))

        def rollback(self, region: str, release_id: str | None) -> None:
            self.calls.append(("rollback", region))

        def stop_all(self) -> None:
            pass

    alerts: list[tuple] = []
    rel = create_release(PARAMS, settings=settings)
    controller = DeployController(settings, Recorder(), timing=Timing(1, 1, 0, 0, 0.2, 5),
                                  alert=lambda *a: alerts.append(a),
                                  predeploy=lambda r, s: GateReport(False, ["sma_cross: smoke backtest failed"]))
    result = controller.deploy(rel.release_id)
    assert result.status == "gate_failed" and Recorder.calls == []
    assert alerts and alerts[0][0] == "P1" and "pre-deploy gate" in alerts[0][1]


def test_one_deploy_at_a_time_and_optimization_waits(settings: Settings) -> None:
    from nettrace_dagster.coordinator.core import Coordinator

    coordinator = Coordinator(ledger_of(settings), settings.audit_dir)
    running = coordinator.begin("deploy", "deploy:other", ttl_s=60)
    assert coordinator.begin("optimization", "optuna").status == "queued"
    rel = create_release(PARAMS, settings=settings)
    controller = DeployController(settings, timing=Timing(1, 1, 0, 0, 0.2, 5), alert=lambda *a: None)
    result = controller.deploy(rel.release_id)
    assert result.status == "refused" and "is running" in result.reasons[0]
    coordinator.end(running.activity_id)


def test_deploy_sensor_requests_each_release_once_by_its_id(settings: Settings) -> None:
    import dagster as dg

    from sensors.deploy import deploy_on_release_in_force

    instance = dg.DagsterInstance.ephemeral()
    first = create_release(PARAMS, settings=settings)
    ctx = dg.build_sensor_context(instance=instance, cursor=None)
    out = deploy_on_release_in_force(ctx)
    assert [r.run_key for r in out.run_requests] == [first.release_id]
    assert out.run_requests[0].run_config == {"ops": {"deployments": {"config": {"release": first.release_id}}}}
    again = deploy_on_release_in_force(dg.build_sensor_context(instance=instance, cursor=out.cursor))
    assert isinstance(again, dg.SkipReason)
    # the same release put in force again: the same run key, which Dagster never runs twice
    create_release(PARAMS, settings=settings)
    second = create_release({"strategies": {"momentum": {}}}, settings=settings)
    out2 = deploy_on_release_in_force(dg.build_sensor_context(instance=instance, cursor=out.cursor))
    assert [r.run_key for r in out2.run_requests] == [second.release_id]  # only the newest in force


def test_trading_sensor_stands_down_while_a_node_drives_the_account(settings: Settings) -> None:
    from nettrace_dagster.deploy.positions import driver_of, release_lease, renew_lease
    from sensors.trading import node_driver

    ledger = ledger_of(settings)
    assert node_driver() is None
    renew_lease(ledger, "main", "node:ewr:1", ttl_s=30)
    assert node_driver() == "node:ewr:1"
    release_lease(ledger, "main", "node:ewr:1")
    assert driver_of(ledger, "main") is None


@pytest.fixture
def fly(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path]:
    log = tmp_path / "flyctl.jsonl"
    monkeypatch.setenv("FAKE_FLYCTL_LOG", str(log))
    monkeypatch.setenv("FLYCTL_PATH", str(FAKE_FLYCTL))
    monkeypatch.setenv("FLY_API_TOKEN", "fly-secret-token-xyz")
    monkeypatch.setenv("NETTRACE_DEPLOY_TARGET", "fly")
    return load_settings(), log


def test_fly_target_runs_one_flyctl_deploy_per_region(fly: tuple[Settings, Path]) -> None:
    from nettrace_dagster.deploy.targets import FlyTarget, make_target

    settings, log = fly
    target = make_target(settings)
    assert isinstance(target, FlyTarget)
    for region in REGIONS:
        target.deploy(region, "r-abc")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == len(REGIONS) and all(c["token"] for c in calls)
    assert [c["argv"][c["argv"].index("--app") + 1] for c in calls] == [f"nettrace-{r}" for r in REGIONS]
    assert all(c["argv"][0] == "deploy" and "NETTRACE_RELEASE=r-abc" in c["argv"] for c in calls)
    assert all("fly-secret-token-xyz" not in " ".join(c["argv"]) for c in calls)  # env only, never argv


def test_fly_deploy_failure_is_a_failed_region_and_rolls_back_by_flyctl(fly: tuple[Settings, Path],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.deploy import health
    from nettrace_dagster.deploy.state import set_region

    settings, log = fly
    old = create_release({"strategies": {"momentum": {}}}, settings=settings).release_id
    for region in REGIONS:
        set_region(ledger_of(settings), region, old, None, "running")
    new = create_release(PARAMS, settings=settings).release_id
    monkeypatch.setenv("FAKE_FLYCTL_FAIL", "nettrace-nrt")
    # no network here: the gates of the regions flyctl did deploy are taken as passing
    monkeypatch.setattr("nettrace_dagster.deploy.controller.check_region",
                        lambda region, *a, **k: health.GateResult(region, True, {"http": {"ok": True, "detail": "ok"}}))
    alerts: list[tuple] = []
    result = DeployController(settings, timing=Timing(1, 1, 0, 0, 0.2, 5), alert=lambda *a: alerts.append(a)).deploy(new)
    assert result.status == "rolled_back" and result.failed_regions == ["nrt"]
    assert "flyctl exited 1" in result.stages[0]["regions"][1]["detail"]
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    apps = [(c[c.index("--app") + 1], next(a for a in c if a.startswith("NETTRACE_RELEASE="))) for c in calls]
    assert sorted(apps[:2]) == [("nettrace-lhr", f"NETTRACE_RELEASE={new}"), ("nettrace-nrt", f"NETTRACE_RELEASE={new}")]
    assert sorted(apps[2:]) == [("nettrace-lhr", f"NETTRACE_RELEASE={old}"), ("nettrace-nrt", f"NETTRACE_RELEASE={old}")]
    assert "fly-secret-token-xyz" not in canonical(result.as_dict()) + (settings.audit_dir / "deploy_history.jsonl").read_text()


def test_fly_target_needs_its_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.deploy.targets import FlyTarget, TargetError

    monkeypatch.setenv("NETTRACE_DEPLOY_TARGET", "fly")
    with pytest.raises(TargetError, match="FLY_API_TOKEN"):
        FlyTarget(load_settings())


def cli(*argv: str) -> int:
    from nettrace_dagster.cli import main

    return main(list(argv))


def test_release_and_deploy_commands(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("release", "create", "--params", json.dumps(PARAMS), "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert made["release"].startswith("r-") and made["in_force"] is True
    assert cli("deploy", "history", "--json") == 0
    events = json.loads(capsys.readouterr().out)
    assert events and {"release", "stage", "region", "status", "time"} <= set(events[0])
    assert events[0]["event"] == "release_created" and events[0]["release"] == made["release"]
    assert cli("deploy", "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert [r["region"] for r in status["regions"]] == list(REGIONS) and status["driver"] is None
    assert cli("release", "create", "--params", "{not json") == 2
    assert "not JSON" in capsys.readouterr().err
    assert cli("deploy", "run", "r-missing") == 2
    assert cli("deploy", "history", "--limit", "0") == 2


def test_deploy_history_is_queryable_from_duckdb(settings: Settings) -> None:
    from nettrace_dagster.warehouse import Warehouse

    rel = create_release(PARAMS, settings=settings)
    frame = Warehouse(settings.lake_dir, settings.audit_dir).query(
        "SELECT release, status FROM audit_deploy_history WHERE event = 'release_created'")
    assert frame.rows() == [(rel.release_id, "created")]


def test_node_refuses_to_load_without_a_configured_token(settings: Settings) -> None:
    from starlette.testclient import TestClient

    from nettrace_dagster.deploy.node import NodeState, build_app

    rid = create_release(PARAMS, settings=settings).release_id
    unconfigured = TestClient(build_app(NodeState("lhr", settings, "")))
    assert unconfigured.post("/release", json={"release": rid}, headers={"Authorization": "Bearer "}).status_code == 503
    state = NodeState("lhr", settings, "s3cret-token")
    client = TestClient(build_app(state))
    assert client.post("/release", json={"release": rid}, headers={"Authorization": "Bearer s3cret-tokeX"}
                       ).status_code == 401
    assert client.post("/release", content=b"nope", headers={"Authorization": "Bearer s3cret-token"}).status_code == 400
    assert state.release is None
    ok = client.post("/release", json={"release": rid}, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and state.release is not None and state.release.release_id == rid
    assert client.get("/telemetry").json()["release"] == rid


def test_a_failed_run_is_a_p1_alert(settings: Settings) -> None:
    import dagster as dg

    from nettrace_dagster.audit import read_audit
    from nettrace_dagster.notify import reset_rate_limit
    from sensors.alerts import alert_on_run_failure

    @dg.op
    def boom() -> None:
        raise RuntimeError("kaboom")

    @dg.job
    def doomed() -> None:
        boom()

    reset_rate_limit()
    instance = dg.DagsterInstance.ephemeral()
    result = doomed.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.PIPELINE_FAILURE)
    ctx = dg.build_run_status_sensor_context(sensor_name="alert_on_run_failure", dagster_event=failure,
                                             dagster_instance=instance, dagster_run=result.dagster_run
                                             ).for_run_failure()
    alert_on_run_failure(ctx)
    [rec] = list(read_audit(settings.audit_dir, "webhook_audit_trail"))
    assert (rec["severity"], rec["title"]) == ("P1", "Dagster run failed: doomed")
    assert result.run_id in rec["text"]


def test_demo_section_leaves_no_node_running_even_on_error(settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.deploy import demo
    from nettrace_dagster.deploy.controller import DeployController
    from nettrace_dagster.deploy.targets import _alive

    started: list[int] = []

    def deploy_then_fail(self: DeployController, release_id: str) -> None:
        self.target.start("lhr")  # a real node process…
        started.append(self.target.pid("lhr"))
        raise RuntimeError("boom mid-deploy")  # …and the deploy dies

    monkeypatch.setattr(DeployController, "deploy", deploy_then_fail)
    with pytest.raises(RuntimeError, match="error: RuntimeError: boom mid-deploy"):
        demo.demo_section(settings, None)  # the demo fails with one line…
    assert started and not _alive(started[0])  # …and no node is left running
    assert (settings.home / "nodes" / "lhr.log").exists()  # the node really ran
