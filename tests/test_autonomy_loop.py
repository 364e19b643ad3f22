"""The whole loop of issue 10 on three weeks of the default seed, as the demo runs it: one study
per regime, the overfitting gate, then the promotion pipeline replayed on the simulator's next
bars (which neither the search nor the gate saw). At least one optimized set must go COLD → WARM
→ LIMITED → FULL on its own evidence, and the baseline-vs-promoted comparison must be taken on
bars after the lake's last one."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from nettrace_dagster.backtest.by_regime import regime_labels
from nettrace_dagster.market.lake import write_parquet_atomic
from nettrace_dagster.market.sim import SIM_START, bars_between
from nettrace_dagster.optimize.study import config_from_settings, optimize_regime
from nettrace_dagster.promotion.demo import replay
from nettrace_dagster.promotion.intake import from_optimized
from nettrace_dagster.regimes import LABELS, RegimeConfig, label_regimes
from nettrace_dagster.rules import load_rules
from nettrace_dagster.settings import load_settings

END_BAR = 60_480  # six weeks after the simulator's bar 0: a fixed window, so the test does not move with "now"


def test_the_default_seed_optimizes_gates_and_promotes_a_set_to_full(home: Path) -> None:
    settings = load_settings()
    assert settings.nettrace_sim_seed == 7 and settings.nettrace_sim_bars == 30_240  # the demo's defaults
    frames = {}
    for symbol in settings.symbols:
        frames[symbol] = bars_between(symbol, END_BAR - settings.nettrace_sim_bars, END_BAR, 7)
        write_parquet_atomic(frames[symbol], settings.lake_dir / "candles" / f"{symbol}.parquet")
    labels = {s: regime_labels(df, label_regimes(df, RegimeConfig())).astype(str) for s, df in frames.items()}
    rules = load_rules(settings)
    results = {}
    for regime in LABELS:
        cfg = config_from_settings(settings, regime, rules)
        cfg.storage = None  # in memory: the study's storage is tested elsewhere
        results[regime] = optimize_regime(frames, labels, cfg).to_value()
    for regime, r in results.items():  # every verdict carries its evidence; a stop says why
        assert r["trials"] == 40 and (r["passed"] or r["failed_tests"]), regime
    passed = [r for r in results.values() if r["passed"]]
    assert passed, {k: v["failed_tests"] for k, v in results.items()}

    out = replay(settings, from_optimized(results), home / "replay")
    full = [c for c in out["promotion"] if c["final_stage"] == "FULL"]
    assert full, out["promotion"]
    assert all(c["stages"] == ["COLD", "WARM", "LIMITED", "FULL"] for c in full)
    assert {c["regime"] for c in full} <= {r["regime"] for r in passed}  # only gate-passed sets get there
    bvp = out["baseline_vs_promoted"]
    assert bvp["bars"] == 1440 and bvp["promoted_candidate"] in {c["candidate"] for c in full}
    lake_end = SIM_START + timedelta(minutes=END_BAR - 1)  # the lake's last bar
    assert max(df["timestamp"].max() for df in frames.values()) == lake_end
    assert datetime.fromisoformat(bvp["bars_from"]) > lake_end
