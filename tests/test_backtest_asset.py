"""The `backtests` asset: production parameters per symbol, strategy and regime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.backtests import backtests
from assets.market import candles, regimes
from nettrace_dagster.backtest import EngineParams, run_backtest
from nettrace_dagster.backtest.by_regime import ALL, backtest_symbols, held_mask, regime_labels
from nettrace_dagster.backtest.synthetic import synthetic_candles
from nettrace_dagster.market.lake import Lake
from nettrace_dagster.partitions import symbol_partitions
from nettrace_dagster.resources import MarketDataResource, build_resources
from nettrace_dagster.rules import Rules
from nettrace_dagster.settings import Settings


def _labels(df: pl.DataFrame) -> pl.DataFrame:
    n = df.height
    names = np.array(["BULL", "BEAR", "SIDEWAYS"])[(np.arange(n) // 500) % 3]
    return pl.DataFrame({"timestamp": df["timestamp"], "regime": names})


@pytest.mark.slow(seconds=6)
def test_report_rows_per_symbol_strategy_and_regime() -> None:
    data = {s: synthetic_candles(3000, seed) for seed, s in enumerate(["AAA-USDT", "BBB-USDT"])}
    report, results = backtest_symbols(data, {s: _labels(df) for s, df in data.items()},
                                       {"sma_cross": {"fast": 10, "slow": 30}, "momentum": {}})
    assert set(report["regime"]) == {ALL, "BULL", "BEAR", "SIDEWAYS"}
    assert report.filter(pl.col("regime") == ALL).height == 4
    for (symbol, name), result in results.items():
        rows = report.filter((pl.col("symbol") == symbol) & (pl.col("strategy") == name))
        overall = rows.filter(pl.col("regime") == ALL).row(0, named=True)
        assert overall["total_return"] == np.float64(result.metrics.total_return).item() or \
            abs(overall["total_return"] - result.metrics.total_return) < 1e-9
        parts = rows.filter(pl.col("regime") != ALL)
        assert parts["bars"].sum() == 3000
        assert parts["trades"].sum() == overall["trades"]  # every trade belongs to its entry bar's regime
        # compounding the per-regime returns gives back the whole run's return
        assert abs(np.prod(1 + parts["total_return"].to_numpy()) - 1 - overall["total_return"]) < 1e-9


def test_regime_labels_and_held_mask() -> None:
    df = synthetic_candles(10, 1)
    regimes = pl.DataFrame({"timestamp": df["timestamp"][:5], "regime": ["BULL"] * 5})
    assert list(regime_labels(df, regimes)) == ["BULL"] * 5 + ["UNKNOWN"] * 5
    result = run_backtest(synthetic_candles(2000, 2), "sma_cross", {"fast": 5, "slow": 20}, EngineParams())
    held = held_mask(result.trades, 2000)
    assert abs(held.mean() - result.metrics.exposure) < 1e-12


def test_materialize_backtests(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    res = {**build_resources(settings),
           "market": MarketDataResource(source="sim", lake_dir=str(settings.lake_dir), sim_bars=2000)}
    for key in symbol_partitions.get_partition_keys():
        assert dg.materialize([candles, regimes], partition_key=key, resources=res).success
    monkeypatch.delenv("NETTRACE_RULE_MIN_CONFIDENCE", raising=False)
    result = dg.materialize([candles, regimes, backtests], selection=[backtests], resources=res)
    assert result.success
    mat = result.asset_materializations_for_node("backtests")[0]
    assert "best" in mat.metadata["summary"].value
    assert mat.metadata["equity_curves"].value.startswith("![")
    assert "data:image/png;base64," in mat.metadata["equity_curves"].value
    report = result.output_for_node("backtests")
    n_symbols = len(symbol_partitions.get_partition_keys())
    assert report.filter(pl.col("regime") == ALL).height == 3 * n_symbols
    assert set(report["regime"]) <= {ALL, "BULL", "BEAR", "SIDEWAYS", "UNKNOWN"}
    assert mat.metadata["rule2_min_confidence"].value == 0.70

    # Tightened Rule 2 settings reach the asset: it gates with the execution layer's rules.
    monkeypatch.setenv("NETTRACE_RULE_MIN_CONFIDENCE", "0.9")
    tight = dg.materialize([candles, regimes, backtests], selection=[backtests], resources=res)
    assert tight.asset_materializations_for_node("backtests")[0].metadata["rule2_min_confidence"].value == 0.9
    tight_report = tight.output_for_node("backtests")
    lake = Lake(settings.lake_dir)
    keys = symbol_partitions.get_partition_keys()
    data = {k: lake.read_candles(k) for k in keys}
    expected, _ = backtest_symbols(data, {k: lake.read("regimes", k) for k in keys},
                                   rules=Rules().tightened(min_confidence=0.9))
    trades = pl.col("trades").sum()
    assert tight_report.select(trades).item() == expected.select(trades).item()
    assert tight_report.select(trades).item() < report.select(trades).item()


ONE_SYMBOL = r"""
import json
import dagster as dg
from assets.backtests import backtests
from assets.market import candles, regimes
from assets.portfolio import portfolio
from nettrace_dagster.partitions import symbol_partitions
from nettrace_dagster.resources import MarketDataResource, build_resources
from nettrace_dagster.settings import load_settings

settings = load_settings()
res = {**build_resources(settings),
       "market": MarketDataResource(source="sim", lake_dir=str(settings.lake_dir), sim_bars=2000)}
assert symbol_partitions.get_partition_keys() == ["BTC-USDT"]
assert dg.materialize([candles, regimes], partition_key="BTC-USDT", resources=res).success
result = dg.materialize([candles, regimes, backtests, portfolio], selection=[backtests, portfolio], resources=res,
                        raise_on_error=False)
failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
report = result.output_for_node("backtests") if result.success else None
print(json.dumps({"success": result.success, "failures": failures,
                  "symbols": sorted(set(report["symbol"])) if report is not None else [],
                  "portfolio": len(result.asset_materializations_for_node("portfolio"))}))
"""


@pytest.mark.slow(seconds=6)
def test_backtests_and_portfolio_with_one_symbol(home: Path) -> None:
    # The symbol partitions are fixed at import, so one symbol needs its own process.
    env = {**os.environ, "NETTRACE_SYMBOLS": "BTC-USDT"}
    proc = subprocess.run([sys.executable, "-c", ONE_SYMBOL], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["success"], out["failures"]
    assert out["symbols"] == ["BTC-USDT"] and out["portfolio"] == 1
