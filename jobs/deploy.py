"""Deploys and rollbacks of releases: `deploy` (started by the deploy sensor with the release id in
its config) and `rollback` (every region back on its previous release, or on a named one)."""

import dagster as dg

from assets.deployments import deployments

deploy = dg.define_asset_job(
    "deploy", selection=[deployments],
    description="Roll a release out (gate → canary → primary → full, with health gates and automatic "
                "rollback) and record the release per region. Started by deploy_on_release_in_force.")


class RollbackConfig(dg.Config):
    to: str = ""  # a release id; empty: each region's previous release


@dg.op(description="Every deployed region back on its previous release (or the one named).")
def rollback_release_op(context: dg.OpExecutionContext, config: RollbackConfig) -> dict:
    from nettrace_dagster.deploy.rollback import rollback_main

    out = rollback_main(config.to or None)
    context.log.info(f"rollback: {out}")
    if not out["ok"]:
        raise dg.Failure(description="rollback failed: " + "; ".join(
            out["reasons"] + [f"{r['region']}: {r['detail']}" for r in out["regions"] if not r["ok"]])[:1000])
    return out


@dg.job(name="rollback", description="Roll every region back to its previous release (or `to`).")
def rollback() -> None:
    rollback_release_op()
