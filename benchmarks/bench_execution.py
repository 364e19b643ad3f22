"""Execution-layer latency: the rule-gate decision and a paper order through the whole engine.

    python benchmarks/bench_execution.py [--quick] [--postgres] [--update-docs]

- decision: `execution.decide.decide` (every rule of an entry, sizing included) on an in-memory
  account snapshot — the gate itself, without the ledger round trip that feeds it.
- paper entry: `ExecutionEngine.submit` of one entry with the paper broker — the decision
  transaction (refresh, every rule, the capital hold, the intent row, its audit record through the
  outbox), the paper venue's own transaction and the booking transaction, each fsync'd — in one
  process, then four processes at once on one ledger (each entry is followed by an untimed exit).
  With --postgres, the same on 127.0.0.1:5432 (skipped if it does not answer).
Timings are per call (perf_counter_ns). `--update-docs` rewrites the "## Execution layer" section
of docs/benchmarks.md (and nothing else).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nettrace_dagster.execution.costs import CostModel  # noqa: E402
from nettrace_dagster.execution.decide import decide  # noqa: E402
from nettrace_dagster.execution.intents import Intent  # noqa: E402
from nettrace_dagster.rules import AccountSnapshot, Rules, StrategyRecord  # noqa: E402
from tests.pg import PostgresUnavailable, scratch_database  # noqa: E402

WORKER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
url, audit, gate, n, _, pace, name = sys.argv[1:8]
import random
rng = random.Random()
ledger = Ledger(url)
engine = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=None if audit == "-" else audit)
marks = {"BTC-USDT": 100.0}

def round_trip(i, timed):
    entry = Intent(name, "BTC-USDT", "entry", 100.0, f"e{i}", 0.9, 3, notional=5.0)
    t = time.perf_counter_ns()
    engine.submit(entry, marks)
    dt = time.perf_counter_ns() - t
    engine.submit(Intent(name, "BTC-USDT", "exit", 100.0, f"x{i}"), marks)
    return dt

for i in range(30):  # warm up (connections, compiled statements) before the clock starts
    round_trip(f"w{i}", False)
Path(gate, f"ready-{time.time_ns()}").touch()
while not Path(gate, "go").exists():
    time.sleep(0.001)
out = []
for i in range(int(n)):
    out.append(round_trip(i, True))
    if float(pace):
        time.sleep(rng.uniform(0, 2 * float(pace)))
print(json.dumps(out))
"""


def stats(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    return {"n": int(a.size), "p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "max_us": float(a.max())}


def bench_decision(n: int) -> dict[str, float]:
    rules, costs = Rules(), CostModel()
    acct = AccountSnapshot(equity=120.0, cash=80.0, principal=100.0, peak_equity=125.0, day_start_equity=121.0,
                           locked_profit=3.0, reserved=5.0)
    rec = StrategyRecord(trades=14, wins=8, net_pnl=4.2)
    intents = [Intent("sma_cross", "BTC-USDT", "entry", 60_000.0 + i, f"k{i}", 0.6 + (i % 5) / 10, i % 4)
               for i in range(64)]
    for i in range(2000):  # warm up
        decide(rules, costs, acct, rec, intents[i % 64], 0.0)
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        decide(rules, costs, acct, rec, intents[i % 64], 0.0)
        out.append(time.perf_counter_ns() - t)
    return stats(out)


def bench_orders(url: str, tmp: Path, procs: int, n: int, pace_s: float, audit: bool = True) -> dict[str, float]:
    """`procs` processes each submitting `n` timed paper entries (strategies of their own)."""
    script, gate = tmp / "worker.py", tmp / f"gate-{time.time_ns()}"
    script.write_text(WORKER)
    gate.mkdir()
    audit_dir = str(tmp / "audit") if audit else "-"
    workers = [subprocess.Popen([sys.executable, str(script), url, audit_dir, str(gate), str(n), str(ROOT),
                                 str(pace_s), f"bench{i}-{time.time_ns()}"],
                                stdout=subprocess.PIPE) for i in range(procs)]
    while len(list(gate.glob("ready-*"))) < procs:
        time.sleep(0.01)
    (gate / "go").touch()
    ns = [x for w in workers for x in json.loads(w.communicate()[0])]
    return stats(ns)


def run(quick: bool, pg: bool) -> list[tuple[str, dict[str, float]]]:
    n_dec, n_res = (20_000, 300) if quick else (200_000, 2_000)
    rows = [("rule-gate decision (in-process)", bench_decision(n_dec))]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp / 'ledger.db'}"
        rows.append(("paper entry, SQLite, 1 process", bench_orders(url, tmp, 1, n_res, 0.0)))
        rows.append(("paper entry, SQLite, 4 processes, each every ~10 ms",
                     bench_orders(url, tmp, 4, n_res // 2, 0.010)))
        rows.append(("… the same, no audit log", bench_orders(url, tmp, 4, n_res // 2, 0.010, audit=False)))
        rows.append(("paper entry, SQLite, 4 processes, flat out (saturated)",
                     bench_orders(url, tmp, 4, n_res // 2, 0.0)))
        if pg:
            try:
                # the tests' scratch database (PGUSER, else postgres, else root), dropped afterwards
                with scratch_database("nettrace_bench") as db:
                    rows.append(("paper entry, PostgreSQL, 1 process", bench_orders(db.url(), tmp, 1, n_res, 0.0)))
                    rows.append(("paper entry, PostgreSQL, 4 processes, each every ~10 ms",
                                 bench_orders(db.url(), tmp, 4, n_res // 2, 0.010)))
            except PostgresUnavailable as exc:
                print(f"{exc}: PostgreSQL rows skipped", file=sys.stderr)
    return rows


def markdown(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = ["## Execution layer", "",
             f"`python benchmarks/bench_execution.py --postgres` on {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. Goals: decision p99 ≤ 100 µs, "
             "paper entry p99 ≤ 10 ms (the seed's promise for a capital decision). A paper entry is "
             "`ExecutionEngine.submit` end to end: the decision transaction (refresh, every rule, the capital "
             "hold, the intent row and its audit record), the paper venue's transaction and the booking — "
             "three fsync'd SQLite commits (WAL, BEGIN IMMEDIATE after an flock) or PostgreSQL row-locked "
             "transactions — and the audit outbox appended to the log. In the 4-process runs every process "
             "trades in a loop, paced (a random pause averaging 10 ms) or flat out, where on 2 cores the "
             "figures are mostly queueing for CPU and the write lock.", "",
             "| measurement | calls | p50 | p99 | max |", "|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['n']} | {s['p50_us']:.1f} µs | {s['p99_us']:.1f} µs | {s['max_us']:.0f} µs |")
    lines += ["", reading(rows)]
    return "\n".join(lines) + "\n"


def reading(rows: list[tuple[str, dict[str, float]]]) -> str:
    """What the table says against the goals, computed from this run's figures."""
    verdicts = []
    for name, stats in rows:
        goal = 100.0 if name.startswith("rule-gate") else 10_000.0
        met = "meets" if stats["p99_us"] <= goal else "misses"
        verdicts.append(f"{name}: p99 {stats['p99_us'] / 1000:.2f} ms {met} the {goal / 1000:g} ms goal")
    return ("Reading (this run): " + "; ".join(verdicts) + ". Most of a paper entry is its three durable "
            "commits (an fsync each); what remains of the 4-process tail is waiting for a lock holder the OS "
            "descheduled (four workers on two cores) and the occasional WAL checkpoint. Figures move with other "
            "load on the machine: rerun on a quiet one.")


def update_docs(section: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Execution layer")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--update-docs", action="store_true")
    args = ap.parse_args()
    section = markdown(run(args.quick, args.postgres))
    print(section)
    if args.update_docs:
        update_docs(section)


if __name__ == "__main__":
    main()
