"""The Dagster instance NetTrace writes: telemetry off, compute quotas enforced by the run queue."""

import dagster as dg

from nettrace_dagster.coordinator.quotas import COMPUTE_QUOTAS, RUN_TAG_KEY
from nettrace_dagster.definitions import defs
from nettrace_dagster.instance import prepare_home
from nettrace_dagster.settings import Settings


def test_instance_config_enforces_compute_quotas(settings: Settings) -> None:
    prepare_home(settings)
    with dg.DagsterInstance.get() as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert not instance.telemetry_enabled
    assert {"key": RUN_TAG_KEY, "value": "backtest", "limit": COMPUTE_QUOTAS["backtest"]} in limits
    assert {"key": RUN_TAG_KEY, "value": "paper", "limit": COMPUTE_QUOTAS["paper"]} in limits
    assert not any(limit["value"] == "live" for limit in limits)  # live trading is never queued


def test_trading_tick_runs_count_against_the_paper_quota() -> None:
    assert defs.resolve_job_def("trading_tick").tags[RUN_TAG_KEY] == "paper"
