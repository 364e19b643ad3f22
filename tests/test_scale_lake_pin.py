"""The lake's folder comes from the settings on the machine that runs the step, never from run
config: a Celery worker or a launchpad user cannot point the IO manager elsewhere."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nettrace_dagster.definitions import build_definitions
from nettrace_dagster.settings import Settings


def _refresh(settings: Settings, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    from nettrace_dagster.instance import prepare_home
    from nettrace_dagster.settings import load_settings

    settings = load_settings()  # after the test's NETTRACE_SIM_BARS

    prepare_home(settings)
    job = build_definitions(settings).resolve_job_def("market_refresh")
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(instance=instance, partition_key="BTC-USDT", raise_on_error=False,
                                      run_config=run_config or {})


def test_run_config_cannot_move_the_lake(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_BARS", "400")
    elsewhere = tmp_path / "elsewhere"
    result = _refresh(settings, {"resources": {"io_manager": {"config": {"base_dir": str(elsewhere)}}}})
    assert not result.success
    errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_failure and e.event_specific_data]
    assert any("pinned" in text for text in errors), errors
    assert not elsewhere.exists() or not any(elsewhere.rglob("*.parquet"))


def test_the_lake_is_the_settings_folder(settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_BARS", "400")
    result = _refresh(settings)
    assert result.success
    assert (settings.lake_dir / "candles" / "BTC-USDT.parquet").is_file()
    assert (settings.lake_dir / "regimes" / "BTC-USDT.parquet").is_file()
