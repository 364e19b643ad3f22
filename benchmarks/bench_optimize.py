"""Benchmark: one regime's study (TPE, N trials) on one-minute bars, walk-forward gate included.

    PYTHONPATH=. python benchmarks/bench_optimize.py [--bars 1000000] [--trials 200] [--mode full|portfolio]

`full` searches everything (the nine portfolio parameters and every strategy's own: signals are
recomputed whenever a strategy parameter changes); `portfolio` pins the strategies' parameters
(their signals are computed once and cached) and searches the nine. Prints the total time, the
time in the backtests (signals + engine + Rule 2/3 replay + metrics) vs in the sampler (TPE,
timed around the trial's parameter suggestions) and the rest of Optuna (study bookkeeping), the gate's time, and the peak resident memory. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np

from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.optimize import study as S


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bars", type=int, default=1_000_000)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--mode", choices=("full", "portfolio"), default="full")
    args = p.parse_args()
    candles = {"BTC-USDT": synthetic_candles(args.bars, seed=42, vol=7e-4)}
    labels = {"BTC-USDT": np.full(args.bars, "BULL")}  # every bar one regime: the whole series is searched
    cfg = S.StudyConfig("BULL", n_trials=args.trials, seed=7, search_portfolio=True)
    if args.mode == "portfolio":
        cfg.strategies = None
    # warm the JIT and the caches once, outside the timing (a scheduled run pays this once per process)
    S.optimize_regime({k: v.head(5_000) for k, v in candles.items()}, {k: v[:5_000] for k, v in labels.items()},
                      S.StudyConfig("BULL", n_trials=3))

    in_objective = [0.0]
    real_call = S.Objective.__call__

    def timed_call(self: S.Objective, trial: object) -> float:
        t = time.perf_counter()
        try:
            return real_call(self, trial)  # type: ignore[arg-type]
        finally:
            in_objective[0] += time.perf_counter() - t

    S.Objective.__call__ = timed_call  # type: ignore[method-assign]
    # TPE samples inside the objective (at the trial's first suggest call): time it apart
    in_sampler = [0.0]
    real_suggest = S.suggest_param_set

    def timed_suggest(*a: object, **kw: object) -> object:
        t = time.perf_counter()
        try:
            return real_suggest(*a, **kw)  # type: ignore[arg-type]
        finally:
            in_sampler[0] += time.perf_counter() - t

    S.suggest_param_set = timed_suggest  # type: ignore[assignment]
    if args.mode == "portfolio":
        real_space = S.search_space

        def pinned(c: S.StudyConfig) -> tuple:
            pspace, sspace = real_space(c)
            return pspace, {n: {k: S.Dim(d.kind, v, v) for k, d in dims.items()
                                for v in [S.default_param_set().strategies[n][k]]} for n, dims in sspace.items()}

        S.search_space = pinned  # type: ignore[assignment]
    t0 = time.perf_counter()
    study, objective = S.search(candles, labels, cfg)  # = S.run_study, keeping the objective for the gate
    t_search = time.perf_counter() - t0
    t1 = time.perf_counter()
    outcome = S.evaluate(study, candles, labels, cfg, objective)  # as `optimize_regime` does
    t_gate = time.perf_counter() - t1
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "bars": args.bars, "trials": outcome.trials, "mode": args.mode,
        "total_s": round(total, 2), "search_s": round(t_search, 2),
        "backtests_s": round(in_objective[0] - in_sampler[0], 2), "sampler_s": round(in_sampler[0], 2),
        "optuna_other_s": round(t_search - in_objective[0], 2), "gate_s": round(t_gate, 2),
        "per_trial_backtest_ms": round(1000 * (in_objective[0] - in_sampler[0]) / max(outcome.trials, 1), 1),
        "peak_rss_mb": round(peak_mb), "dsr": round(outcome.dsr, 3), "pbo": round(outcome.pbo, 3),
        "param_set": outcome.param_set.content_id(), "passed": outcome.verdict.passed, "failed_tests": outcome.verdict.failed_tests,
    }, indent=1))


if __name__ == "__main__":
    main()
