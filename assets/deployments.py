"""Deployments: which release every region runs, after rolling one out when a run asks for it."""

import dagster as dg
import polars as pl

from nettrace_dagster.charts import markdown_table
from nettrace_dagster.execution.resource import ExecutionResource


class DeployConfig(dg.Config):
    release: str = ""  # a release id to roll out first (the deploy sensor sets it); empty: record only


@dg.asset(group_name="deploy", kinds={"polars"})
def deployments(context: dg.AssetExecutionContext, config: DeployConfig,
                execution: ExecutionResource) -> dg.Output[pl.DataFrame]:
    """The release each region runs (and the one kept for rollback), with its node's role. When the
    run names a release, it is rolled out first — pre-deploy gate, canary (lhr, nrt) → primary (ewr)
    → full (ord, fra, sin, bom), health gates after each stage, automatic rollback — and the run
    fails when the rollout did not succeed (its regions are recorded either way)."""
    from nettrace_dagster.deploy.controller import DeployController, deploy_status

    settings = execution.settings
    outcome = None
    if config.release:
        outcome = DeployController(settings).deploy(config.release)
        context.log.info(f"deploy {outcome.deploy_id}: {outcome.status} in {outcome.seconds:.1f}s")
    status = deploy_status(settings)
    frame = pl.DataFrame(status["regions"], schema={"region": pl.String, "role": pl.String, "current": pl.String,
                                                    "previous": pl.String, "status": pl.String,
                                                    "updated_at": pl.Float64, "node_pid": pl.Int64})
    metadata: dict[str, object] = {
        "regions": markdown_table([{k: r[k] for k in ("region", "role", "current", "previous", "status")}
                                   for r in status["regions"]]),
        "target": status["target"],
        "driver": status["driver"] or "none (trading_tick drives the account)",
    }
    if outcome is not None:
        metadata["deploy"] = dg.MetadataValue.json(outcome.as_dict())
        metadata["deploy_seconds"] = round(outcome.seconds, 2)
        if not outcome.ok:
            context.log.error(f"deploy {outcome.release} {outcome.status}: {'; '.join(outcome.reasons)[:500]}")
            raise dg.Failure(description=f"deploy of {outcome.release} {outcome.status}",
                             metadata={"reasons": "; ".join(outcome.reasons)[:1000]})
    return dg.Output(frame, metadata=metadata)
