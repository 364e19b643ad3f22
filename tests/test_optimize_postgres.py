"""Several OS processes search one study on PostgreSQL (127.0.0.1) and the gate counts every
trial any of them ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nettrace_dagster.market.sim import simulate
from nettrace_dagster.optimize.study import StudyConfig, evaluate, make_storage, run_study, storage_url
from nettrace_dagster.regimes import RegimeConfig, label_regimes

ROOT = Path(__file__).resolve().parents[1]
TRIALS, WORKERS, BARS = 12, 3, 3000


@pytest.mark.slow(seconds=9)
def test_three_processes_search_one_study_on_postgres(pg_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    make_storage(pg_url)  # the tables, once (workers racing to create them retry; not timed here)
    start_at = time.time() + 3.5  # every worker imports first, then all search together
    args = ["--storage", pg_url, "--regime", "BULL", "--trials", str(TRIALS), "--bars", str(BARS),
            "--symbols", "BTC-USDT", "--start-at", str(start_at)]
    procs = [subprocess.Popen([sys.executable, "-m", "nettrace_dagster.optimize.worker", *args, "--worker", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for i in range(WORKERS)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, [err[-800:] for _, err in outs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert len({r["study"] for r in reports}) == 1  # one study, joined by all
    ran = [r["ran"] for r in reports]
    assert all(ran), f"a worker ran no trial: {ran}"  # each process searched
    numbers = sorted(n for r in ran for n in r)
    assert numbers == sorted(set(numbers))  # no trial run twice
    storage = optuna.storages.RDBStorage(storage_url(pg_url))
    study = optuna.load_study(study_name=reports[0]["study"], storage=storage)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert TRIALS <= len(complete) <= TRIALS + WORKERS - 1  # the shared target, at most a trial over each
    # the parent's gate sees the same study and counts every trial (DSR's N)
    candles = {"BTC-USDT": simulate("BTC-USDT", BARS, seed=7)}
    labels = {s: label_regimes(df, RegimeConfig())["regime"].to_numpy().astype(str) for s, df in candles.items()}
    cfg = StudyConfig("BULL", n_trials=TRIALS, storage=pg_url)
    joined = run_study(candles, labels, cfg)
    assert joined.study_name == reports[0]["study"] and len(joined.trials) == len(study.trials)  # nothing re-run
    assert evaluate(joined, candles, labels, cfg).trials == len(complete)
