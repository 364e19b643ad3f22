"""Validate the latest generated strategies (the six layers, sandbox included)."""

import dagster as dg

from assets.validation import validated_strategies

strategy_validation = dg.define_asset_job(
    "strategy_validation", selection=[validated_strategies],
    description="Run every generated strategy through the six validation layers; validated ones become COLD "
                "candidates, warnings go to manual review (review_approval), rejected ones keep their reasons.")
