"""The `discovery` key of `nettrace demo --json`: counts from the latest discovery materializations."""

from __future__ import annotations

from typing import Any

import dagster as dg

from nettrace_dagster.discovery.opportunities import store_for
from nettrace_dagster.market.lake import Lake


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    mat = event.asset_materialization if event is not None else None
    return {k: getattr(v, "value", v) for k, v in (mat.metadata if mat is not None else {}).items()}


def demo_counts(settings: Any, instance: dg.DagsterInstance) -> dict[str, int]:
    """{"opportunities", "scored", "above_threshold", "generated"}: opportunities stored, rows scored
    and how many reach OPPORTUNITY_MIN_SCORE_FOR_SUBMISSION, and strategies the latest
    `generated_strategies` produced. Read from the run's materialization metadata, the lake where
    a materialization carries none."""
    raw, scored, generated = (_metadata(instance, a) for a in
                              ("raw_opportunities", "scored_opportunities", "generated_strategies"))
    opportunities = raw.get("stored")
    if opportunities is None:
        opportunities = store_for(settings).read().height
    if "rows" not in scored:
        lake = Lake(settings.lake_dir)
        df = lake.read("scored_opportunities") if lake.exists("scored_opportunities") else None
        scored = {"rows": df.height if df is not None else 0,
                  "above_threshold": int(df["above_threshold"].sum()) if df is not None and df.height else 0}
    return {"opportunities": int(opportunities), "scored": int(scored.get("rows", 0)),
            "above_threshold": int(scored.get("above_threshold", 0)), "generated": int(generated.get("count", 0))}


def demo_section(settings: Any, instance: dg.DagsterInstance) -> tuple[dict[str, Any], list[str]]:
    """The demo's extension-point form (`DEMO_SECTIONS` entry "nettrace_dagster.discovery.demo:demo_section"):
    the `discovery` key (with validation's counts) and two summary lines."""
    from nettrace_dagster.validation.demo import demo_counts as validation_counts

    counts = {**demo_counts(settings, instance), **validation_counts(settings, instance)}
    line = (f"discovery: {counts['opportunities']} opportunities, {counts['scored']} scored, "
            f"{counts['above_threshold']} at or above the threshold, {counts['generated']} strategies generated")
    checked = (f"validation: {counts['validated']} validated (COLD candidates), {counts['rejected']} rejected, "
               f"{counts['in_review']} waiting for review (nettrace review)")
    return {"discovery": counts}, [line, checked]
