"""The demo's view of validation: counts from the latest `validated_strategies` materialization."""

from __future__ import annotations

from typing import Any

from nettrace_dagster.settings import Settings

KEYS = ("validated", "rejected", "in_review")


def demo_counts(settings: Settings, instance: Any) -> dict[str, int]:
    """{"validated", "rejected", "in_review"} from the latest materialization's metadata (zeros
    when the asset was never materialized)."""
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey("validated_strategies"))
    materialization = event.asset_materialization if event is not None else None
    metadata = materialization.metadata if materialization is not None else {}
    out = {}
    for key in KEYS:
        value = metadata.get(key)
        out[key] = int(getattr(value, "value", value) or 0)
    return out
