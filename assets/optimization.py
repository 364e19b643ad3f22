"""Optimized parameters per market regime, with the overfitting gate's evidence."""

import warnings
from typing import Any

import dagster as dg
import numpy as np

from assets.inputs import SymbolFrames, by_symbol, every_symbol
from assets.market import candles as candles_asset
from assets.market import regimes as regimes_asset
from nettrace_dagster.audit import append_audit
from nettrace_dagster.backtest.by_regime import regime_labels
from nettrace_dagster.charts import line_chart, markdown_table
from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.optimize.coordination import OptimizationWaited, optimization_slot
from nettrace_dagster.optimize.study import config_from_settings, evaluate, run_study
from nettrace_dagster.regimes import LABELS
from nettrace_dagster.rules import load_rules
from nettrace_dagster.settings import load_settings

# A pickling IO manager for this asset's dict value (the lake's manager writes frames only):
# `io_manager_def` is a beta parameter, whose warning would greet every load.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*io_manager_def.*")

regime_partitions = dg.StaticPartitionsDefinition(list(LABELS))
AUDIT_LOG = "param_optimization"


@dg.asset(partitions_def=regime_partitions, group_name="optimization", kinds={"optuna", "numba"},
          ins={"candles": every_symbol(candles_asset), "regimes": every_symbol(regimes_asset)},
          io_manager_def=dg.FilesystemIOManager())
def optimized_params(context: dg.AssetExecutionContext, candles: SymbolFrames, regimes: SymbolFrames,
                     execution: ExecutionResource) -> dg.Output[dict[str, Any]]:
    """The best parameter set for one market regime (BULL / BEAR / SIDEWAYS) and the evidence
    that it is not overfitted.

    An Optuna study (TPE, seeded) searches the nine portfolio parameters (take-profit tiers,
    trailing stop, Rule 3 fire / promote / clone thresholds on their strict side only, trade-size
    multiplier, cash reserve) and every strategy's own parameters, scoring each trial by a
    portfolio backtest of all strategies on all symbols — fired and cloned by the trader's own
    Rule 3 code — on the in-sample bars labelled with this regime, under safety constraints
    (drawdown, Sharpe bounds, win rate). The latest bars are held out before the search starts.
    The gate then asks: does the best set make money on the held-out bars (Sharpe, folds, trades),
    is its Sharpe above what the number of trials run would produce by luck (deflated Sharpe
    ratio), and does the study's in-sample winner hold its rank out of sample (PBO by CSCV)?
    `passed` is false, with the failed tests and by how much, when any answer is no: such a set is
    never promoted. Each round is appended to `audit/param_optimization.jsonl`."""
    regime = context.partition_key
    settings = load_settings()
    frames = by_symbol(context, "candles", candles)
    labels_frames = by_symbol(context, "regimes", regimes)
    labels = {s: regime_labels(df, labels_frames.get(s)).astype(str) for s, df in frames.items()}
    rules = load_rules(settings)  # the execution layer's rules: the search can only tighten them
    cfg = config_from_settings(settings, regime, rules)
    if not frames or not any(df.height for df in frames.values()):
        raise dg.Failure(description=f"{regime}: no candles to optimize on")
    owner = f"optimized_params:{regime}:{context.run.run_id[:8]}"
    try:
        with optimization_slot(execution.coordinator(), owner, log=context.log.info) as wait_for_deploys:
            study = run_study(frames, labels, cfg)
            outcome = evaluate(study, frames, labels, cfg)
            wait_for_deploys()  # never publish parameters while a deploy runs
    except OptimizationWaited as exc:
        raise dg.Failure(description=str(exc)) from None
    value = outcome.to_value()
    append_audit(settings.audit_dir, AUDIT_LOG, {"event": "study_finished", **{k: value[k] for k in (
        "regime", "param_set_id", "trials", "in_sample_sharpe", "out_of_sample_sharpe", "out_of_sample_return",
        "dsr", "pbo", "passed", "failed_tests", "study")}, "param_set": value["param_set"]})
    verdict = "PASSED" if outcome.verdict.passed else "FAILED: " + "; ".join(outcome.verdict.failed_tests)
    summary = (f"{regime}: {outcome.trials} trials; in-sample Sharpe {outcome.in_sample_sharpe:.2f}, "
               f"out-of-sample Sharpe {outcome.out_of_sample_sharpe:.2f} / return {outcome.out_of_sample_return:+.2%}; "
               f"DSR {outcome.dsr:.2f}, PBO {outcome.pbo:.2f} — gate {verdict}")
    context.log.info(summary)
    metadata: dict[str, Any] = {
        "summary": dg.MetadataValue.text(summary),
        "verdict": "passed" if outcome.verdict.passed else "failed",
        "failed_tests": dg.MetadataValue.text("\n".join(outcome.verdict.failed_tests) or "none"),
        "gate": markdown_table([t.to_dict() for t in outcome.verdict.tests]),
        "trials": outcome.trials, "param_set_id": value["param_set_id"],
        "in_sample_sharpe": outcome.in_sample_sharpe, "in_sample_return": outcome.in_sample_return,
        "out_of_sample_sharpe": outcome.out_of_sample_sharpe, "out_of_sample_return": outcome.out_of_sample_return,
        "out_of_sample_bars": outcome.oos_bars, "out_of_sample_trades": outcome.oos_trades,
        "dsr": outcome.dsr, "pbo": outcome.pbo if np.isfinite(outcome.pbo) else -1.0,
        "best_params": dg.MetadataValue.json(value["param_set"]), "study": outcome.study,
        "value": dg.MetadataValue.json(value),  # what the demo and the CLI read without the IO manager
        "study_storage": "PostgreSQL" if settings.param_opt_storage_url else str(settings.home / "optuna.db"),
    }
    if outcome.history:
        x = [n for n, _ in outcome.history]
        values = np.array([v for _, v in outcome.history])
        metadata["optimization_history"] = line_chart(
            x, {"trial Sharpe (in sample)": values, "best so far": np.maximum.accumulate(values)},
            f"{regime}: optimization history ({outcome.trials} trials)")
    return dg.Output(value, metadata=metadata)
