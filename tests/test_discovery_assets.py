"""The discovery assets end to end on the shipped sample feeds, the value validation consumes,
the demo counts, the schedule, and the `discover` / `opportunity` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.discovery import generated_strategies, raw_opportunities, scored_opportunities
from nettrace_dagster.cli import main
from nettrace_dagster.discovery.demo import demo_counts
from nettrace_dagster.resources import build_resources
from nettrace_dagster.settings import Settings
from nettrace_dagster.strategies import load_strategy_file
from nettrace_dagster.warehouse import Warehouse
from tests.fakes.feeds import FakeFeeds

KEYS = {"name", "path", "sha256", "opportunity_id", "mode", "source"}


@dg.asset
def consumer(generated_strategies: list[dict]) -> dg.MaterializeResult:
    """Stands for validated_strategies: it reads the list through `ins`, as validation will."""
    assert isinstance(generated_strategies, list)
    return dg.MaterializeResult(metadata={"seen": dg.MetadataValue.json(generated_strategies)})


def materialize(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = dg.materialize([raw_opportunities, scored_opportunities, generated_strategies, consumer],
                            resources=build_resources(settings), instance=instance)
    assert result.success
    return result


def test_sources_to_generated_strategies_on_the_samples(settings: Settings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(settings, instance)
    raw = result.asset_materializations_for_node("raw_opportunities")[0].metadata
    assert raw["new"].value == 16 and raw["failing_sources"].value == 0
    scored = result.asset_materializations_for_node("scored_opportunities")[0].metadata
    assert scored["rows"].value == 16 and scored["above_threshold"].value >= 1
    for criterion in ("novelty", "market_fit", "complexity", "capital_efficiency", "risk"):
        assert criterion in scored["explanations"].value and criterion in scored["new_scores"].value
    value = result.output_for_node("generated_strategies")
    assert 1 <= len(value) <= 5 and all(set(item) == KEYS for item in value)
    assert {item["mode"] for item in value} == {"template"}
    seen = result.asset_materializations_for_node("consumer")[0].metadata["seen"].value
    assert seen == value  # what validation receives through `ins` is exactly the asset's value
    for item in value:
        assert Path(item["path"]).parent == settings.strategies_dir / "generated"
        assert load_strategy_file(item["path"]).name == item["name"]
    counts = demo_counts(settings, instance)
    assert counts == {"opportunities": 16, "scored": 16, "above_threshold": scored["above_threshold"].value,
                      "generated": len(value)}
    # queryable with SQL: one view per asset, the source from the file name
    df = Warehouse(settings.lake_dir, settings.audit_dir).query(
        "SELECT r.source, count(*) AS n, sum(CASE WHEN s.above_threshold THEN 1 ELSE 0 END) AS above "
        "FROM raw_opportunities r JOIN scored_opportunities s USING (opportunity_id) GROUP BY 1 ORDER BY 1")
    assert dict(zip(df["source"], df["n"], strict=True)) == {"arxiv": 4, "defillama": 3, "reddit": 3, "sec": 2,
                                                             "social": 2, "upgrades": 2}

    # The same feeds again: nothing new is stored; generation takes the backlog (above the threshold,
    # no file yet) first, then reuses files already made (same paths, no rewrite).
    again = materialize(settings, instance)
    assert again.asset_materializations_for_node("raw_opportunities")[0].metadata["new"].value == 0
    second = again.output_for_node("generated_strategies")
    above = set(Warehouse(settings.lake_dir, settings.audit_dir).query(
        "SELECT opportunity_id FROM scored_opportunities WHERE above_threshold")["opportunity_id"])
    first_ids, second_ids = {v["opportunity_id"] for v in value}, {v["opportunity_id"] for v in second}
    assert len(above) == scored["above_threshold"].value and first_ids | second_ids == above
    assert len(second_ids - first_ids) == min(len(above) - len(value), 5)
    paths = {v["opportunity_id"]: v["path"] for v in value}
    assert all(paths[v["opportunity_id"]] == v["path"] for v in second if v["opportunity_id"] in paths)


def test_the_schedule_runs_the_discovery_job(settings: Settings) -> None:
    from nettrace_dagster.definitions import defs

    schedule = defs.resolve_schedule_def("discovery_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.cron_schedule == "0 */6 * * *"
    job = defs.resolve_job_def("discovery_refresh")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} >= {
        "raw_opportunities", "scored_opportunities", "generated_strategies"}
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, 6, tzinfo=UTC))
    assert schedule.evaluate_tick(context).run_requests[0].run_key == "discovery-20261201T0600"


def test_discover_command_reports_per_source(home: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    assert main(["discover", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {s["source"]: s["new"] for s in doc["sources"]}["arxiv"] == 4 and doc["failed"] == []
    with FakeFeeds() as fake:
        monkeypatch.setenv("DISCOVERY_REDDIT_URL", fake.url("/gone"))
        monkeypatch.setenv("DISCOVERY_MAX_RETRIES", "0")
        assert main(["discover", "--json", "--source", "reddit", "--source", "arxiv"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by = {s["source"]: s for s in doc["sources"]}
    assert set(by) == {"reddit", "arxiv"} and by["reddit"]["failure"].endswith("HTTP 404 Not Found")
    assert by["arxiv"]["fetched"] == 4 and by["arxiv"]["new"] == 0 and doc["stored"] == 16


def test_opportunity_submit(home: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["opportunity", "submit", "--title", "ETH breakout", "--text", "buy the 20-bar high", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["new"] and not second["new"] and first["opportunity_id"] == second["opportunity_id"]
    assert main(["opportunity", "submit", "--title", "x", "--url", "file:///etc/passwd"]) == 2
    assert capsys.readouterr().err.strip() == \
        "nettrace opportunity: error: --url 'file:///etc/passwd' is not an http(s) URL"
    assert main(["opportunity", "submit", "--title", "  "]) == 2
    assert main(["opportunity", "list", "--json"]) == 0
    capsys.readouterr()


def test_with_every_source_off_the_assets_still_materialize(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.discovery.sources import SOURCES
    from nettrace_dagster.settings import load_settings

    for name in SOURCES:
        monkeypatch.setenv(f"DISCOVERY_{name.upper()}_ENABLED", "0")
    result = materialize(load_settings(), dg.DagsterInstance.ephemeral())
    assert result.output_for_node("generated_strategies") == []
    assert result.asset_materializations_for_node("scored_opportunities")[0].metadata["rows"].value == 0


def test_demo_section_form(settings: Settings) -> None:
    from nettrace_dagster.discovery.demo import demo_section

    instance = dg.DagsterInstance.ephemeral()
    materialize(settings, instance)
    payload, lines = demo_section(settings, instance)
    assert payload["discovery"]["opportunities"] == 16 and payload["discovery"]["generated"] >= 1
    assert lines[0].startswith("discovery: 16 opportunities, 16 scored")
    assert {"validated", "rejected", "in_review"} <= set(payload["discovery"])
