"""Promotion jobs: advancing the pipeline (`promotion_tick`), the human checkpoint
(`approve_candidate`, launchable from the UI's launchpad with the candidate id as run config), and
rolling the parameters in force back (`params_rollback`, started by the guardrails sensor)."""

import dagster as dg

from assets.candidates import candidates
from nettrace_dagster.coordinator.quotas import run_tags
from nettrace_dagster.promotion import guardrails
from nettrace_dagster.promotion.runtime import pipeline_from_settings
from nettrace_dagster.settings import load_settings

promotion_tick = dg.define_asset_job(
    "promotion_tick", selection=[candidates], tags=run_tags("backtest"),
    description="Take in new candidates, run COLD backtests, judge WARM / LIMITED sleeves whose window ended, "
                "promote to FULL (started by the promotion sensor).")


class Decision(dg.Config):
    """A human decision on a candidate: `approve` (a LIMITED one) or `reject` (any active one)."""

    candidate_id: int
    decision: str = "approve"
    reason: str = ""
    by: str = "dagster-ui"


@dg.op(description="Approve or reject one promotion candidate (audited with who, when and why).")
def decide_candidate(context: dg.OpExecutionContext, config: Decision) -> dict:
    pipe = pipeline_from_settings(load_settings())
    who = config.by or "dagster-ui"
    if config.decision == "approve":
        out = pipe.approve(config.candidate_id, who, config.reason)
    elif config.decision == "reject":
        out = pipe.reject(config.candidate_id, who, config.reason)
    else:
        raise dg.Failure(description=f"decision must be approve or reject, not {config.decision!r}")
    context.log.info(f"candidate {config.candidate_id}: {config.decision} by {who} → {out.get('stage')}")
    return out


@dg.job(description="The human checkpoint: approve or reject a candidate (run config: candidate_id, decision, "
                    "reason, by).")
def approve_candidate() -> None:
    decide_candidate()


class RollbackConfig(dg.Config):
    reason: str
    expected_in_force_id: int = 0  # 0: whatever is in force
    by: str = "guardrails"


@dg.op(description="Put the previous parameter set back in force (audited, P1 alert).")
def rollback_params(context: dg.OpExecutionContext, config: RollbackConfig) -> dict:
    settings = load_settings()
    pipe = pipeline_from_settings(settings)
    out = guardrails.rollback(pipe.ledger, by=config.by, reason=config.reason, audit_dir=settings.audit_dir,
                              expected_in_force_id=config.expected_in_force_id or None)
    context.log.warning(f"rollback: {out.get('reason') if not out['rolled_back'] else config.reason}")
    return {"rolled_back": out["rolled_back"]}


@dg.job(description="Roll the parameters in force back to the previous set (started by the guardrails sensor).")
def params_rollback() -> None:
    rollback_params()
