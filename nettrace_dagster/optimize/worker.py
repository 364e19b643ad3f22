"""A study worker process: joins the regime's study on a shared storage and runs trials until the
study holds the target count, whoever ran them. Several of these (on one machine or many, all
pointed at one PostgreSQL `--storage`) search one study together.

    python -m nettrace_dagster.optimize.worker --storage postgresql://… --regime BULL \
        --trials 200 --worker 1 [--sim-seed 7 --bars 10080 | --lake DIR]

Every worker must see the same bars (the study's name is derived from them): the simulator with
one seed, or one lake.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

from nettrace_dagster.optimize.study import StudyConfig, run_study
from nettrace_dagster.regimes import LABELS, RegimeConfig, label_regimes


def load_candles(args: argparse.Namespace) -> dict[str, pl.DataFrame]:
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if args.lake:
        from nettrace_dagster.market.lake import Lake

        lake = Lake(Path(args.lake))
        return {s: lake.read_candles(s) for s in symbols}
    from nettrace_dagster.market.sim import simulate

    return {s: simulate(s, args.bars, seed=args.sim_seed) for s in symbols}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nettrace_dagster.optimize.worker", description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True, help="Optuna RDB URL shared by every worker")
    p.add_argument("--regime", required=True, choices=LABELS)
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--worker", type=int, default=0, help="this worker's number (seeds its sampler)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--symbols", default="BTC-USDT,ETH-USDT,SOL-USDT")
    p.add_argument("--sim-seed", type=int, default=7)
    p.add_argument("--bars", type=int, default=10080)
    p.add_argument("--lake", default="", help="read candles from this lake instead of the simulator")
    p.add_argument("--start-at", type=float, default=0.0, help="wait until this UNIX time (start workers together)")
    args = p.parse_args(argv)
    candles = load_candles(args)
    labels = {s: label_regimes(df, RegimeConfig())["regime"].to_numpy().astype(str) for s, df in candles.items()}
    time.sleep(max(0.0, args.start_at - time.time()))
    cfg = StudyConfig(args.regime, n_trials=args.trials, seed=args.seed, storage=args.storage, worker=args.worker)
    study = run_study(candles, labels, cfg)
    mine = [t.number for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("eval", {}).get("worker") == args.worker]
    print(json.dumps({"study": study.study_name, "trials": len(study.trials), "ran": mine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
