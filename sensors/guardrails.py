"""The guardrails sensor: rolls the FULL parameter set back (the `params_rollback` job) when its
day's loss, its Sharpe drop against the set it replaced or its drawdown crosses the line
(`nettrace_dagster.promotion.guardrails`). One rollback per set in force (the run key)."""

import dagster as dg

from jobs.promotion import params_rollback
from nettrace_dagster.execution.risk import ACCOUNT_OF_MODE, trading_mode
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.promotion import guardrails
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.settings import load_settings


@dg.sensor(job=params_rollback, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
           description="Rolls the FULL parameter set back on a day's loss over PARAM_OPT_MAX_DAILY_LOSS_USD, a Sharpe "
                       "drop over 30 % against the replaced set, or a drawdown over 8 %.")
def guardrails_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    settings = load_settings()
    out = guardrails.check(ledger_of(settings), PromotionConfig.from_settings(settings),
                           ACCOUNT_OF_MODE[trading_mode(settings)])
    if not out["guarded"]:
        return dg.SkipReason("no promoted parameter set in force: nothing to guard")
    if not out["triggers"]:
        return dg.SkipReason(f"set {out['in_force_id']} within its guardrails")
    reason = "; ".join(out["triggers"])
    return dg.RunRequest(run_key=f"rollback-{out['in_force_id']}", run_config={"ops": {"rollback_params": {
        "config": {"reason": reason, "expected_in_force_id": out["in_force_id"], "by": "guardrails_sensor"}}}})
