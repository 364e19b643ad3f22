"""Declarative automation: assets with an automation condition (regimes, market_summary) follow
their upstreams — a candles materialization from the UI or a schedule relabels the regimes."""

import dagster as dg

automation = dg.AutomationConditionSensorDefinition(
    "nettrace_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (eager: follow new upstream data).")
