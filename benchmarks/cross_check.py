"""Cross-check the engine against vectorbt on the reference strategy (sma_cross).

    pip install 'nettrace[peers]'      # vectorbt==1.2.0, never a runtime dependency
    python benchmarks/cross_check.py [--bars 100000] [--json]

Same gated signals into both engines, vectorbt configured to NetTrace's fill conventions (see
`nettrace_dagster/backtest/peers.py`); the trades (entry bar, exit bar, exit price) must be the
same and the final equity within 1e-6 relative. Exit 0 when every case agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from nettrace_dagster.backtest import EngineParams, Prices, gate_entries, simulate_signals
from nettrace_dagster.backtest.peers import cross_check, vectorbt_available
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.strategies import get_strategy

CASES: list[tuple[dict, dict]] = [
    ({"fast": 10, "slow": 30}, {}),
    ({"fast": 10, "slow": 30}, {"stop_loss": 0.005, "take_profit": 0.01}),
    ({"fast": 5, "slow": 50}, {"trailing_stop": 0.004, "fee": 0.0005, "slippage_bps": 3}),
    ({"fast": 20, "slow": 60}, {"stop_loss": 0.003, "take_profit": 0.004, "slippage_bps": 5}),
    ({"fast": 10, "slow": 30}, {"trade_fraction": 0.5, "stop_loss": 0.004}),
    ({"fast": 3, "slow": 8}, {"trailing_stop": 0.002, "take_profit": 0.003, "trade_fraction": 0.3, "fee": 0.002}),
]


def run(bars: int, seed: int) -> list[dict]:
    df = synthetic_candles(bars, seed)
    prices = Prices.from_candles(df)
    strategy = get_strategy("sma_cross")
    out = []
    for sparams, eparams in CASES:
        engine = EngineParams.from_dict(eparams)
        signals = strategy.run(df, sparams)
        t = time.perf_counter()
        result = simulate_signals(prices, signals, engine)
        ours_s = time.perf_counter() - t
        report = cross_check(prices, gate_entries(signals, engine), signals.exits, engine,
                             result.trades, result.metrics.final_equity)
        reasons = result.trades["exit_reason"].value_counts().sort("exit_reason")
        out.append({"strategy": sparams, "engine": eparams, "ours_seconds": round(ours_s, 4),
                    "exit_reasons": dict(reasons.iter_rows()), **report})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not vectorbt_available():
        print("vectorbt is not installed: pip install 'vectorbt==1.2.0' (the `peers` extra)", file=sys.stderr)
        return 2
    results = run(args.bars, args.seed)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            verdict = "AGREE" if r["agree"] else "DIFFER: " + "; ".join(r["problems"])
            print(f"{verdict:6}  {r['strategy']} {r['engine']}  trades {r['trades']} vs {r['peer_trades']}, "
                  f"final {r['final_equity']:.6f} vs {r['peer_final_equity']:.6f} "
                  f"(rel {r['final_equity_rel_diff']:.1e}), exits {r['exit_reasons']}")
    return 0 if all(r["agree"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
