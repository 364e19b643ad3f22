"""The live platform under a real `dagster dev -w workspace.yaml`: a fast simulated market, the
sensors doing the rest.

`NETTRACE_SIM_SPEED=120` (two simulated minutes per real second), `NETTRACE_SIM_BARS=600`, one
symbol (a third of the runs on a shared 2-core machine), `NETTRACE_TRADING_TICK_MINUTES=1` (the
smallest: the trading sensor looks every 60 s). What refreshes candles is the `market_refresh`
schedule, every `NETTRACE_CANDLES_REFRESH_MINUTES` on the wall clock, at least one minute: too
coarse and too unpredictable for a bounded test. So the test itself is the clock: it launches two
rounds of `market_refresh` runs (one per symbol partition, in-process executor) through GraphQL
`launchRun`, some seconds apart so the simulated market has moved on, and sets the schedule to
once a day so it does not add runs of its own. Everything after that is the platform's own doing,
started by its default-RUNNING sensors: `trading_on_new_candles` starts `trading_tick` (which
writes paper orders to the ledger) and `nettrace_automation` keeps `market_summary` and
`backtests` up to date. Observed through the instance (DagsterInstance on the temp DAGSTER_HOME),
GraphQL (stale status of every asset and partition) and the ledger's SQLite file. One deadline of
240 s for the whole observation (about 90-100 s here under load); the process group is always
stopped (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ["BTC-USDT"]  # one partition: a third of the runs on a shared 2-core machine
BUDGET_S = 240  # the whole observation, from Popen to the last check (~100 s seen; margin for a slow CI)
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
NODES = "{ assetNodes { assetKey { path } isPartitioned } }"
STALE = """query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } staleStatus } }"""
STALE_BY_PARTITION = """query($keys: [AssetKeyInput!], $partitions: [String!]!) { assetNodes(assetKeys: $keys) {
  assetKey { path } staleStatusByPartition(partitions: $partitions) } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def wait_for(what: str, check, deadline: Deadline, every: float = 1.0, detail=None):
    """Poll `check()` until it returns a truthy value; fail with `what` at the deadline."""
    last_error = None
    while deadline.left() > 0:
        try:
            value = check()
            if value:
                print(f"{deadline.elapsed():5.1f} s  {what}")  # shown with -s: where the time went
                return value
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the server or storage is still settling: poll again
            last_error = exc
        time.sleep(min(every, max(deadline.left(), 0)))
    if detail is not None:
        last_error = detail()
    pytest.fail(f"{what}: not seen after {deadline.elapsed():.0f} s (last error: {last_error!r})")


def gql(port: int, query: str, variables: dict | None = None) -> dict:
    r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}},
                   timeout=10)
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def launch_refresh(port: int, symbol: str) -> str:
    params = {"selector": {"repositoryLocationName": "nettrace", "repositoryName": "__repository__",
                           "jobName": "market_refresh"},
              # One process per run, not one per step: the runs are small, the imports are not.
              "runConfigData": {"execution": {"config": {"in_process": {}}}},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": symbol}]}}
    result = gql(port, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def runs_done(instance: dg.DagsterInstance, run_ids: list[str]) -> bool:
    statuses = [instance.get_run_by_id(run_id).status for run_id in run_ids]
    failed = [s for s in statuses if s in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
    assert not failed, f"market_refresh runs failed: {statuses}"
    return all(s == dg.DagsterRunStatus.SUCCESS for s in statuses)


def materializations(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> list:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None),
        limit=100).records
    return sorted(records, key=lambda r: r.storage_id)


def data_version(record) -> str | None:
    tags = record.asset_materialization.tags or {}
    return tags.get("dagster/data_version")


def paper_orders(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as db:
        tables = {name for (name,) in db.execute("select name from sqlite_master where type='table'")}
        return sum(db.execute(f"select count(*) from {t}").fetchone()[0]  # noqa: S608 - fixed names
                   for t in ("orders", "paper_orders") if t in tables)


# Assets refreshed by their own schedules and sensors, not by new candles: the optimizer every
# PARAM_OPT_INTERVAL_HOURS (and the candidates it feeds), discovery (and the validation behind
# it), the deployments the deploy sensor rolls out. Stale here for hours is their normal state.
OWN_SCHEDULE = {"optimized_params", "candidates", "raw_opportunities", "scored_opportunities",
                "generated_strategies", "validated_strategies", "deployments"}


def stale_assets(port: int) -> list[str]:
    nodes = [n for n in gql(port, NODES)["assetNodes"] if "/".join(n["assetKey"]["path"]) not in OWN_SCHEDULE]
    plain = [{"path": n["assetKey"]["path"]} for n in nodes if not n["isPartitioned"]]
    split = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    stale = ["/".join(n["assetKey"]["path"]) for n in gql(port, STALE, {"keys": plain})["assetNodes"]
             if n["staleStatus"] != "FRESH"]
    stale += ["/".join(n["assetKey"]["path"])
              for n in gql(port, STALE_BY_PARTITION, {"keys": split, "partitions": SYMBOLS})["assetNodes"]
              if any(status != "FRESH" for status in n["staleStatusByPartition"])]
    return sorted(set(stale))


@pytest.mark.slow(seconds=85)
def test_live_platform_moves_under_dagster_dev(home: Path) -> None:
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    nettrace = Path(sys.executable).with_name("nettrace")
    env = {**os.environ, "NETTRACE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "NETTRACE_SIM_SPEED": "120", "NETTRACE_SIM_BARS": "600",
           "NETTRACE_SYMBOLS": ",".join(SYMBOLS),
           "NETTRACE_CANDLES_REFRESH_MINUTES": "1440", "NETTRACE_TRADING_TICK_MINUTES": "1"}
    # The home's instance config (pools, run queue) as `make ui` writes it.
    subprocess.run([str(nettrace), "init"], cwd=ROOT, env=env, check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    deadline = Deadline(BUDGET_S)
    log = open(home / "dagster-dev.log", "wb")  # a file, not a pipe: nothing can block on it
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("the nettrace code location", lambda: any(
            e["name"] == "nettrace" and e["locationOrLoadError"]
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in gql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                               "locationOrLoadError { __typename } } } } }")["workspaceOrError"]["locationEntries"]),
            deadline)
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))

        # The clock: two refresh rounds; the sim moves two minutes each second in between.
        first = [launch_refresh(port, s) for s in SYMBOLS]
        wait_for("first market_refresh round", lambda: runs_done(instance, first), deadline)
        time.sleep(3)
        second = [launch_refresh(port, s) for s in SYMBOLS]
        wait_for("second market_refresh round", lambda: runs_done(instance, second), deadline)

        for symbol in SYMBOLS:
            candles = materializations(instance, "candles", symbol)
            versions = [data_version(r) for r in candles]
            assert len(candles) >= 2 and None not in versions and len(set(versions)) >= 2, (symbol, versions)
            regimes = materializations(instance, "regimes", symbol)
            assert regimes and regimes[-1].storage_id > candles[-1].storage_id, (symbol, "regimes did not follow")

        # The sensors do the rest: a trading tick on the new candles, paper orders in the ledger.
        def tick_succeeded() -> bool:
            records = instance.get_run_records(dg.RunsFilter(job_name="trading_tick"))
            failed = [r.dagster_run.run_id for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, f"trading_tick failed: {failed}"
            return any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)

        wait_for("a successful trading_tick run", tick_succeeded, deadline)
        assert paper_orders(home / "ledger.db") > 0, "the trading tick placed no paper orders"

        # Automation follows: nothing left stale (market_summary, backtests, portfolio).
        stale: list[str] = []

        def all_fresh() -> bool:
            stale[:] = stale_assets(port)
            return not stale

        wait_for("every asset fresh", all_fresh, deadline, every=3, detail=lambda: f"stale: {stale}")
        assert deadline.elapsed() < BUDGET_S
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        log.close()
