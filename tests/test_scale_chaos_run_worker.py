"""Chaos: a trading tick's run worker killed with SIGKILL mid-step, then re-executed from failure.

The run is launched the way the UI launches it (DefaultRunLauncher through a real code server,
which spawns a real run worker; its step runs in a child of that worker). Once the tick has booked
orders, the worker and its step process are killed with SIGKILL — a machine or container dying.
What must survive:
- Dagster marks the run FAILED (the code server notices its run worker died), not STARTED forever;
- a re-execution from failure (Dagster's FROM_FAILURE strategy, what the UI's "Re-execute from
  failure" does) completes;
- the ledger is consistent: every venue order is known to the ledger and vice versa, fills add up
  to each order's filled quantity, positions equal the fills, no client order id twice;
- no order is duplicated or lost: the ledger holds exactly the orders an uninterrupted tick on the
  same candles books (the oracle: the same tick, run in process on a copy of the lake).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from sqlalchemy import select

from nettrace_dagster.definitions import build_definitions
from nettrace_dagster.demo import QUIET
from nettrace_dagster.instance import prepare_home
from nettrace_dagster.ledger.db import Ledger, ledger_of
from nettrace_dagster.ledger.models import Fill, Order, PaperOrder, Position
from nettrace_dagster.settings import load_settings
from tests.scale import ROOT, wait_for
from tests.scale_launch import request_context, submit_direct

LOCATION = "nettrace"


def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren, … from /proc (the step process of a multiprocess run)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        message = record.message or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ", 1)[1].split(")", 1)[0])
    return None


def ledger_orders(ledger: Ledger) -> list[tuple]:
    with ledger.read() as s:
        return sorted((o.client_order_id, o.side, o.kind, round(o.qty, 10), o.status, round(o.filled_qty, 10))
                      for o in s.scalars(select(Order)))


def assert_ledger_consistent(ledger: Ledger) -> None:
    with ledger.read() as s:
        orders = list(s.scalars(select(Order)))
        venue = {p.client_order_id: p for p in s.scalars(select(PaperOrder))}
        fills = list(s.scalars(select(Fill)))
        positions = list(s.scalars(select(Position)))
        assert orders, "the tick booked no order: nothing was tested"
        ids = [o.client_order_id for o in orders]
        assert len(ids) == len(set(ids))
        at_venue = {o.client_order_id for o in orders if o.exchange_order_id}
        assert set(venue) == at_venue, (set(venue) ^ at_venue)  # no venue order the ledger does not know
        by_order: dict[int, float] = defaultdict(float)
        for f in fills:
            by_order[f.order_id] += f.qty
        held: dict[tuple[str, str], float] = defaultdict(float)
        for o in orders:
            assert by_order.get(o.id, 0.0) == pytest.approx(o.filled_qty, abs=1e-12), o.client_order_id
            if o.client_order_id in venue:
                assert venue[o.client_order_id].filled_qty == pytest.approx(o.filled_qty, abs=1e-12)
            held[(o.strategy, o.symbol)] += (o.filled_qty - o.fee_base) if o.side == "buy" else -o.filled_qty
        for p in positions:
            assert p.qty == pytest.approx(held[(p.strategy, p.symbol)], abs=1e-9), (p.strategy, p.symbol)


@pytest.mark.slow(seconds=40)
def test_sigkill_mid_tick_then_reexecute_from_failure(home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_BARS", "2500")
    settings = load_settings()
    prepare_home(settings)
    defs = build_definitions(settings)
    with dg.DagsterInstance.get() as instance:
        for symbol in settings.symbols:
            assert defs.resolve_job_def("market_refresh").execute_in_process(
                instance=instance, partition_key=symbol, run_config=QUIET).success
    shutil.copytree(settings.lake_dir, tmp_path / "oracle" / "lake")  # the oracle trades the same candles

    ledger = ledger_of(settings)
    with dg.DagsterInstance.get() as instance, request_context(instance, ROOT / "workspace.yaml") as ctx:
        run_id = submit_direct(instance, ctx, LOCATION, "trading_tick")
        pid = wait_for(lambda: worker_pid(instance, run_id), 90, "the run worker to start")

        def booked() -> int:
            with ledger.read() as s:
                return len(list(s.scalars(select(Order.id).limit(3))))

        wait_for(lambda: booked() >= 3, 90, "the tick to book orders", interval=0.02)
        tree = [pid, *descendants(pid)]
        for victim in tree:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.time()
        run = wait_for(lambda: (r := instance.get_run_by_id(run_id)) and r.is_finished and r, 60,
                       "Dagster to mark the killed run finished")
        assert run.status == dg.DagsterRunStatus.FAILURE
        steps = {r.step_key for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        assert "portfolio" not in steps  # it died mid-step, not after
        partial = ledger_orders(ledger)

        location = ctx.get_code_location(LOCATION)
        remote_job = location.get_repository("__repository__").get_full_job("trading_tick")
        retry = instance.create_reexecuted_run(request_context=ctx, parent_run=run, code_location=location,
                                               remote_job=remote_job, strategy=ReexecutionStrategy.FROM_FAILURE)
        instance.launch_run(retry.run_id, ctx)
        done = wait_for(lambda: (r := instance.get_run_by_id(retry.run_id)) and r.is_finished and r, 120,
                        "the re-execution to finish")
        assert done.status == dg.DagsterRunStatus.SUCCESS, done.status
        assert done.parent_run_id == run_id and killed_at > 0

    assert_ledger_consistent(ledger)
    after = ledger_orders(ledger)
    ledger.dispose()
    assert len(after) > len(partial) > 0  # the retry finished the tick the kill interrupted

    oracle_settings = load_settings({**os.environ, "NETTRACE_HOME": str(tmp_path / "oracle")})
    oracle_job = build_definitions(oracle_settings).resolve_job_def("trading_tick")
    assert oracle_job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), run_config=QUIET).success
    oracle = ledger_of(oracle_settings)
    expected = ledger_orders(oracle)
    oracle.dispose()
    assert after == expected  # nothing duplicated, nothing lost
