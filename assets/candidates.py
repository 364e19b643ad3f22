"""The promotion pipeline's state as an asset: new candidates from the optimizer and from the
validated strategies enter it, due candidates are advanced, and the UI shows every candidate with
its stage and evidence.

Its inputs are `optimized_params` (every regime partition) and `validated_strategies`, so the
lineage shows where each candidate came from.
"""

from typing import Any

import dagster as dg

from nettrace_dagster.charts import markdown_table
from nettrace_dagster.ledger.promotion_tables import STAGES
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion import intake
from nettrace_dagster.promotion.runtime import pipeline_from_settings
from nettrace_dagster.settings import load_settings

OPTIMIZED = dg.AssetKey("optimized_params")
VALIDATED = dg.AssetKey("validated_strategies")


def promotion_report(settings: Any, optimized: Any = None, validated: Any = None,
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Submit what is new, advance what is due; (candidate rows, metadata)."""
    pipe = pipeline_from_settings(settings)
    current = in_force.current(pipe.ledger)
    for sub in intake.from_optimized(optimized) + intake.from_validated(validated, current.param_set):
        pipe.submit(sub["param_set"], regime=sub["regime"], source=sub["source"], strategy=sub.get("strategy"),
                    gate=sub["gate"], kind=sub["kind"])
    made = pipe.advance(by="candidates asset")
    views = pipe.candidates()
    counts = {stage: sum(1 for v in views if v.stage == stage) for stage in STAGES}
    rows = [{"id": v.id, "kind": v.kind, "stage": v.stage + (" (awaiting approval)" if v.waiting_approval else ""),
             "regime": v.regime, "source": v.source, "param_set_id": v.param_set_id,
             "evidence": _evidence_line(v)} for v in views]
    metadata: dict[str, Any] = {
        "summary": dg.MetadataValue.text(
            f"{len(views)} candidate(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + f"; in force: {current.param_set_id}" + (f" (candidate {current.candidate_id})" if current.candidate_id
                                                        else " (defaults)")
            + (f"; this run: {len(made)} transition(s)" if made else "")),
        "stage_counts": dg.MetadataValue.json(counts),
        "candidates": markdown_table(rows),
        "transitions": dg.MetadataValue.json(made),
        "in_force": dg.MetadataValue.json(current.to_dict()),
    }
    return rows, metadata


def _evidence_line(v: Any) -> str:
    ev = v.evidence
    if v.failed_tests():
        return "gate failed: " + ", ".join(v.failed_tests())
    parts = []
    if "cold" in ev:
        parts.append(f"COLD Sharpe {ev['cold'].get('sharpe', float('nan')):.2f}")
    for role in ("warm", "limited"):
        if role in ev:
            parts.append(f"{role.upper()} edge {ev[role]['edge']:+.1%}")
    if ev.get("paused"):
        parts.append("paused: " + ev["paused"])
    return "; ".join(parts) or "—"


@dg.asset(ins={"optimized_params": dg.AssetIn(key=OPTIMIZED, partition_mapping=dg.AllPartitionMapping(),
                                               dagster_type=dg.Any),
               "validated_strategies": dg.AssetIn(key=VALIDATED, dagster_type=dg.Any)},
          group_name="promotion", io_manager_key="io_manager", automation_condition=dg.AutomationCondition.eager())
def candidates(context: dg.AssetExecutionContext, optimized_params: Any, validated_strategies: Any
               ) -> dg.Output[None]:
    """Promotion candidates — optimized parameter sets and generated strategies — with their stage
    (COLD → WARM → LIMITED → FULL, or REJECTED / RETIRED / ROLLED_BACK) and the evidence of each
    stage: the overfitting gate's verdict (failed tests named), the COLD backtest Sharpe, the WARM
    and LIMITED sleeves' P&L against their baseline twins. Materializing it takes in new candidates
    and advances the ones whose window has passed; the state lives in the ledger."""
    _, metadata = promotion_report(load_settings(), optimized_params, validated_strategies)
    context.log.info(str(metadata["summary"].value))
    return dg.Output(None, metadata=metadata)
