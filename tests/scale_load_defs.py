"""A small code location for the load and chaos tests: the three kinds of compute NetTrace queues —
backtest-like work, optimization-like work (both under the `backtest` quota, as quotas.py says an
optimization holds it) and paper ticks (the `paper` quota) — each a real step that materializes
into the lake through the project's IO manager and, for paper ticks, books an order in the ledger.

Light on imports (no simulator, numba or strategies: the lake's atomic Parquet IO manager directly) so 12 run workers start quickly on 2 cores. Each step
records its pid and wall-clock interval in its materialization metadata, from which the tests
measure how many steps of a kind really ran at once.
"""

import os
import time

import dagster as dg
import polars as pl

from nettrace_dagster.coordinator.quotas import run_tags
from nettrace_dagster.distributed import executor_for
from nettrace_dagster.market.lake import AtomicParquetIOManager
from nettrace_dagster.settings import load_settings

WORK_S = float(os.environ.get("NETTRACE_LOAD_WORK_S", "1.0"))
slots = dg.DynamicPartitionsDefinition(name="load_slot")

def _busy(seconds: float) -> int:
    """CPU work for `seconds` (what a backtest does), returning a checksum so it is not optimised out."""
    end, total = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        total = (total + sum(i * i for i in range(2000))) % 1_000_003
    return total

def _interval(start: float) -> dict[str, dg.MetadataValue]:
    return {"pid": dg.MetadataValue.int(os.getpid()), "start": dg.MetadataValue.float(start),
            "end": dg.MetadataValue.float(time.time())}

@dg.asset(partitions_def=slots, group_name="load")
def backtest_like(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """A backtest's shape: CPU-bound, one result row per run."""
    start = time.time()
    checksum = _busy(WORK_S)
    df = pl.DataFrame({"slot": [context.partition_key], "checksum": [checksum]})
    return dg.Output(df, metadata=_interval(start))

@dg.asset(partitions_def=slots, group_name="load")
def optimization_like(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """An optimization trial batch: several evaluations, the best kept."""
    start = time.time()
    scores = [_busy(WORK_S / 4) for _ in range(4)]
    df = pl.DataFrame({"slot": [context.partition_key], "best": [max(scores)]})
    return dg.Output(df, metadata=_interval(start))

@dg.asset(partitions_def=slots, group_name="load")
def paper_tick_like(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """A paper tick: one order through the execution layer into the shared ledger (its own strategy
    and bar key per slot, so every run books exactly one order), then a pause like a tick's I/O."""
    from nettrace_dagster.execution.engine import ExecutionEngine
    from nettrace_dagster.execution.intents import Intent
    from nettrace_dagster.execution.paper import PaperBroker
    from nettrace_dagster.ledger.db import ledger_of

    start = time.time()
    ledger = ledger_of(load_settings())
    decision = ExecutionEngine(ledger, PaperBroker(ledger)).submit(
        Intent(f"load-{context.partition_key}", "BTC-USDT", "entry", 100.0, f"bar-{context.partition_key}", 0.9, 3))
    time.sleep(WORK_S)
    df = pl.DataFrame({"slot": [context.partition_key], "status": [decision.status]})
    return dg.Output(df, metadata={**_interval(start), "order_status": decision.status})

# One process per run (the run worker executes its one step): on 2 cores a second process per step
# would measure Python's start-up, not the queue.
_job = {"partitions_def": slots, "executor_def": dg.in_process_executor}
backtest_job = dg.define_asset_job("load_backtest", [backtest_like], tags=run_tags("backtest"), **_job)
optimization_job = dg.define_asset_job("load_optimization", [optimization_like], tags=run_tags("backtest"), **_job)
paper_job = dg.define_asset_job("load_paper", [paper_tick_like], tags=run_tags("paper"), **_job)

# The same backtest-like step through the executor the settings pick (Celery with a broker set):
# what tests/test_scale_celery.py sends over RabbitMQ.
distributed_job = dg.define_asset_job("load_distributed", [backtest_like], partitions_def=slots,
                                      executor_def=executor_for(load_settings()) or dg.multiprocess_executor)

defs = dg.Definitions(assets=[backtest_like, optimization_like, paper_tick_like],
                      jobs=[backtest_job, optimization_job, paper_job, distributed_job],
                      resources={"io_manager": AtomicParquetIOManager(base_dir=str(load_settings().lake_dir))})
