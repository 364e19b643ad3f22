"""Generated strategies through the six validation layers (static … sandbox)."""

import dagster as dg

from nettrace_dagster.settings import load_settings
from nettrace_dagster.validation.batch import counts, validate_batch


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:160]


@dg.asset(ins={"generated_strategies": dg.AssetIn()}, group_name="discovery", io_manager_key="json_io_manager",
          kinds={"python"}, automation_condition=dg.AutomationCondition.eager())
def validated_strategies(context: dg.AssetExecutionContext, generated_strategies: list) -> dg.Output[list]:
    """Every generated strategy after the six validation layers (static, security, conventions,
    integration, coverage, a sandboxed run on sample candles): `validated` ones (and those a
    person approved) are COLD candidates for the promotion pipeline; `in_review` ones passed with
    warnings and wait in `nettrace review`; `rejected` ones keep the failing layer and its reasons."""
    records = validate_batch(load_settings(), list(generated_strategies or []))
    tally = counts(records)
    rows = [f"| {_cell(r['name'])} | {r['status']} | {_cell('; '.join(r['reasons'][:2]) or '—')} |" for r in records]
    table = "\n".join(["| strategy | status | reasons |", "|---|---|---|", *rows]) if rows else "no strategies"
    rejected = {str(r["name"]): r["reasons"] for r in records if r["status"] == "rejected"}
    context.log.info(f"{len(records)} strategies: {tally['validated']} validated, {tally['in_review']} in review, "
                     f"{tally['rejected']} rejected")
    return dg.Output(records, metadata={
        **tally, "strategies": len(records), "table": dg.MetadataValue.md(table),
        "rejected_reasons": dg.MetadataValue.json(rejected),
    })
