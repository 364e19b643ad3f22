"""Compute quotas: at most 3 backtests and 5 paper traders at once; live trading is unlimited.

One mechanism, Dagster's own: jobs tag their runs with `run_tags(kind)` and the instance's run
queue carries `RUN_TAG_LIMITS` (`dagster.yaml`: `run_queue: {tag_concurrency_limits: [...]}`),
so excess runs wait in the queue (visible in the UI), not fail, across every process and machine
that launches through the instance. Work that is not a Dagster run (an optimization's worker
processes) runs inside a run that holds the quota.
"""

from __future__ import annotations

COMPUTE_QUOTAS: dict[str, int | None] = {"backtest": 3, "paper": 5, "live": None}
RUN_TAG_KEY = "nettrace/compute"
RUN_TAG_LIMITS: list[dict[str, object]] = [
    {"key": RUN_TAG_KEY, "value": kind, "limit": limit} for kind, limit in COMPUTE_QUOTAS.items() if limit]


def run_tags(kind: str) -> dict[str, str]:
    """Tags that put a Dagster job's runs under the `kind` quota."""
    if kind not in COMPUTE_QUOTAS:
        raise ValueError(f"unknown compute kind {kind!r}; one of {', '.join(COMPUTE_QUOTAS)}")
    return {RUN_TAG_KEY: kind}
