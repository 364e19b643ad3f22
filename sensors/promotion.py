"""The promotion sensor: starts `promotion_tick` when a candidate has something to decide (a COLD
one waiting for its backtest, a WARM / LIMITED one whose window has passed), and once to record the first
state. Idempotent: the run key names the due candidates and their stages, so one decision is
never started twice."""

import dagster as dg

from assets.candidates import candidates
from jobs.promotion import promotion_tick
from nettrace_dagster.promotion.runtime import pipeline_from_settings
from nettrace_dagster.settings import load_settings


@dg.sensor(job=promotion_tick, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
           description="Advances promotion candidates whose stage window has passed (COLD → WARM → LIMITED → FULL).")
def promotion_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    if not context.instance.fetch_materializations(candidates.key, limit=1).records:
        # Eager automation only follows upstream updates: the first state comes from here.
        return dg.RunRequest(run_key="promotion-first", tags={"nettrace/candidates": "first"})
    pipe = pipeline_from_settings(load_settings())
    due = pipe.due()
    if not due:
        return dg.SkipReason("no candidate has a decision due")
    stages = {c.id: c.stage for c in pipe.candidates() if c.id in due}
    key = "promotion-" + "-".join(f"{cid}{stages[cid][0]}" for cid in due)
    return dg.RunRequest(run_key=key, tags={"nettrace/candidates": ",".join(map(str, due))})
