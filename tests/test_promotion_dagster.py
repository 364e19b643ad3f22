"""The promotion pipeline in Dagster and on the command line: the `candidates` asset fed by
stand-in upstream assets (the optimizer's and the validator's), the approval job, the sensors,
and `nettrace candidates / approve / reject / rollback`."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.market.lake import write_parquet_atomic
from nettrace_dagster.market.sim import simulate
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.paramsets.schema import default_param_set
from nettrace_dagster.promotion import store
from nettrace_dagster.settings import load_settings
from nettrace_dagster.strategies.templating import render_template

REGIMES = dg.StaticPartitionsDefinition(["BULL", "BEAR", "SIDEWAYS"])


def _tuned() -> dict:
    ps = default_param_set()
    ps["strategies"]["momentum"]["lookback"] = 30
    return ps


@dg.asset(partitions_def=REGIMES, io_manager_key="io_manager")
def optimized_params(context: dg.AssetExecutionContext) -> dict:
    """Stand-in for the optimizer's asset (same output contract)."""
    regime = context.partition_key
    ok = regime == "BULL"
    trail = {"BULL": 0.0, "BEAR": 0.03, "SIDEWAYS": 0.04}[regime]
    ps = {**_tuned(), "portfolio": {**_tuned()["portfolio"], "trailing_stop": trail}}
    return {"regime": regime, "param_set": ps, "param_set_id": "x", "trials": 50, "in_sample_sharpe": 2.0,
            "out_of_sample_sharpe": 1.1 if ok else -0.2, "out_of_sample_return": 0.01, "dsr": 0.97 if ok else 0.2,
            "pbo": 0.1 if ok else 0.7, "passed": ok, "failed_tests": [] if ok else ["dsr 0.20 < 0.95", "pbo 0.70 > 0.50"]}


def _strategy_file(home: Path) -> tuple[Path, str]:
    path = home / "strategies" / "gen_cross.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template("crossover", "gen_cross"))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def lake_home(home: Path) -> Path:
    for symbol in ("BTC-USDT", "ETH-USDT"):
        write_parquet_atomic(simulate(symbol, 3 * 1440), home / "lake" / "candles" / f"{symbol}.parquet")
    return home


def test_candidates_asset_takes_in_both_upstreams_and_runs_cold(lake_home: Path) -> None:
    from assets.candidates import candidates

    path, sha = _strategy_file(lake_home)

    @dg.asset(io_manager_key="io_manager")
    def validated_strategies() -> list:
        """Stand-in for the validator's asset."""
        return [{"name": "gen_cross", "path": str(path), "sha256": sha, "status": "validated"},
                {"name": "broken", "path": str(path), "sha256": "0" * 64, "status": "rejected"}]

    assert set(candidates.asset_deps[candidates.key]) == {dg.AssetKey("optimized_params"),
                                                            dg.AssetKey("validated_strategies")}
    resources = {"io_manager": dg.FilesystemIOManager(base_dir=str(lake_home / "io"))}
    instance = dg.DagsterInstance.ephemeral()
    for regime in REGIMES.get_partition_keys():
        assert dg.materialize([optimized_params], partition_key=regime, resources=resources, instance=instance).success
    assert dg.materialize([validated_strategies], resources=resources, instance=instance).success
    result = dg.materialize([optimized_params, validated_strategies, candidates], selection=[candidates],
                            resources=resources, instance=instance)
    assert result.success
    meta = result.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    views = {v.source: v for v in store_views()}
    assert set(views) == {"optimized_params[BULL]", "optimized_params[BEAR]", "optimized_params[SIDEWAYS]",
                          "validated_strategies[gen_cross]"}
    bear = views["optimized_params[BEAR]"]
    assert bear.stage == "REJECTED" and bear.failed_tests() == ["dsr 0.20 < 0.95", "pbo 0.70 > 0.50"]
    assert views["optimized_params[SIDEWAYS]"].stage == "REJECTED"
    bull = views["optimized_params[BULL]"]
    cold = bull.evidence["cold"]
    assert cold["evaluator"] == "portfolio_backtest" and cold["bars"] == 3 * 1440  # the search's own objective
    assert bull.stage == ("WARM" if cold["sharpe"] >= 0.5 else "REJECTED")
    gen = views["validated_strategies[gen_cross]"]
    assert gen.kind == "strategy" and gen.strategy["sha256"] == sha and "gen_cross" in gen.param_set["strategies"]
    assert "cold" in gen.evidence  # a generated strategy goes through COLD like any candidate
    assert meta["stage_counts"].value["REJECTED"] >= 2 and "dsr 0.20 < 0.95" in meta["candidates"].value
    again = dg.materialize([optimized_params, validated_strategies, candidates], selection=[candidates],
                           resources=resources, instance=instance)
    assert again.success and len(store_views()) == 4  # the same results are not submitted twice


def store_views() -> list[store.CandidateView]:
    with ledger_of(load_settings()).read() as s:
        return store.list_in(s)


def _waiting(home: Path) -> int:
    """A LIMITED candidate waiting for approval (as the pipeline leaves one)."""
    ledger = ledger_of(load_settings())
    with ledger.tx() as s:
        c, _ = store.submit_in(s, _tuned(), now=1.0)
        for st in ("WARM", "LIMITED"):
            store.move_in(s, c, st, "pass", "test", "setup", {}, 2.0)
        c.waiting_approval = True
        return c.id


def test_approval_job_promotes_with_the_candidate_id_as_run_config(home: Path) -> None:
    from jobs.promotion import approve_candidate

    cid = _waiting(home)
    bad = approve_candidate.execute_in_process(run_config={"ops": {"decide_candidate": {"config": {
        "candidate_id": cid, "decision": "maybe"}}}}, raise_on_error=False)
    assert not bad.success
    result = approve_candidate.execute_in_process(run_config={"ops": {"decide_candidate": {"config": {
        "candidate_id": cid, "reason": "sleeves look right", "by": "carol"}}}})
    assert result.success and result.output_for_node("decide_candidate")["stage"] == "FULL"
    current = in_force.current(ledger_of(load_settings()))
    assert current.candidate_id == cid and current.strategies["momentum"]["lookback"] == 30
    [approve] = [h for h in store_views()[0].history if h["decision"] == "approve"]
    assert (approve["by"], approve["reason"]) == ("carol", "sleeves look right")


def test_reject_job(home: Path) -> None:
    from jobs.promotion import approve_candidate

    cid = _waiting(home)
    result = approve_candidate.execute_in_process(run_config={"ops": {"decide_candidate": {"config": {
        "candidate_id": cid, "decision": "reject", "reason": "too few trades"}}}})
    assert result.success and store_views()[0].stage == "REJECTED"


def test_cli_candidates_approve_reject_and_rollback(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nettrace_dagster.cli import main

    cid = _waiting(home)
    assert main(["candidates", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["candidates"][0]["id"] == cid and doc["candidates"][0]["waiting_approval"]
    assert doc["in_force"]["id"] is None
    assert main(["candidates"]) == 0 and "waiting for approval" in capsys.readouterr().out
    assert main(["reject", str(cid)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a reason" in err
    assert main(["approve", "abc"]) == 2 and "not a number" in capsys.readouterr().err
    assert main(["approve", "42"]) == 2 and "no candidate 42" in capsys.readouterr().err
    assert main(["approve", str(cid), "--by", "dave", "--reason", "ok", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stage"] == "FULL"
    assert main(["status", "--json"]) == 0  # status reads the parameters in force from the ledger
    st = json.loads(capsys.readouterr().out)
    assert st["params_in_force"]["candidate_id"] == cid and st["rules"]["strategies_in_force"] == sorted(
        _tuned()["strategies"])
    assert main(["reject", str(cid), "--reason", "late"]) == 2  # FULL: nothing to reject
    capsys.readouterr()
    assert main(["rollback", "params", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rolled_back"] and out["to"]["id"] is not None and out["to"]["kind"] == "rollback"
    assert store_views()[0].stage == "ROLLED_BACK"
    assert main(["rollback", "params"]) == 1 and "nothing rolled back" in capsys.readouterr().out
    assert main(["rollback"]) == 1  # the release case: the deploy controller has nothing to return to
    assert "nothing to roll back" in capsys.readouterr().out


def test_sensors_request_runs_only_when_something_is_due(home: Path, monkeypatch) -> None:
    from sensors.guardrails import guardrails_sensor
    from sensors.promotion import promotion_sensor

    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance)
    first = promotion_sensor(ctx)
    assert isinstance(first, dg.RunRequest) and first.run_key == "promotion-first"  # never materialized yet
    instance.report_runless_asset_event(dg.AssetMaterialization("candidates"))
    assert isinstance(promotion_sensor(ctx), dg.SkipReason)
    assert isinstance(guardrails_sensor(ctx), dg.SkipReason)
    ledger = ledger_of(load_settings())
    with ledger.tx() as s:
        store.submit_in(s, _tuned(), now=1.0)
    req = promotion_sensor(ctx)
    assert isinstance(req, dg.RunRequest) and req.run_key == "promotion-1C"
    from nettrace_dagster.ledger.models import Capital

    with ledger.tx() as s:  # a promoted set whose account lost $6 today
        in_force.activate_in(s, _tuned(), by="t", reason="t", baseline={"equity_at_activation": 100.0})
        import time

        from nettrace_dagster.ledger.accounting import utc_day

        s.add(Capital(account="main", principal=100.0, cash=94.0, peak_equity=100.0, day=utc_day(time.time()),
                      day_start_equity=100.0, last_equity=94.0, updated_at=time.time()))
    req = guardrails_sensor(ctx)
    assert isinstance(req, dg.RunRequest) and req.run_key == "rollback-1"
    cfg = req.run_config["ops"]["rollback_params"]["config"]
    assert cfg["expected_in_force_id"] == 1 and "day's loss $6.00" in cfg["reason"]
    from jobs.promotion import params_rollback

    assert params_rollback.execute_in_process(run_config=req.run_config).success
    assert in_force.current(ledger).kind == "rollback"
    assert isinstance(guardrails_sensor(ctx), dg.SkipReason)
