"""`nettrace demo`'s promotion section: accelerated replay to FULL on the default seed, measured on
bars no search or gate saw; no replay (and the gate's failed tests named) off the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.market.lake import write_parquet_atomic
from nettrace_dagster.market.sim import bars_between
from nettrace_dagster.paramsets.schema import default_param_set
from nettrace_dagster.promotion import store
from nettrace_dagster.promotion.demo import demo_section
from nettrace_dagster.settings import load_settings

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")


@pytest.mark.slow(seconds=8)
def test_the_default_seed_promotes_a_candidate_to_full_on_unseen_bars(home: Path) -> None:
    # A fixed week of the default seed in the lake (the demo's own lake ends at "now", which moves).
    for symbol in SYMBOLS:
        write_parquet_atomic(bars_between(symbol, 0, 10_080, 7), home / "lake" / "candles" / f"{symbol}.parquet")
    out, lines = demo_section(load_settings())
    assert set(out) == {"promotion", "baseline_vs_promoted"}
    assert out["promotion"], lines
    for c in out["promotion"]:
        assert set(c) >= {"candidate", "stages", "final_stage"} and c["stages"][0] == "COLD"
        assert c["stages"][-1] == c["final_stage"]
    full = [c for c in out["promotion"] if c["final_stage"] == "FULL"]
    assert len(full) == 1 and full[0]["stages"] == ["COLD", "WARM", "LIMITED", "FULL"], lines
    bvp = out["baseline_vs_promoted"]
    assert set(bvp) >= {"bars", "baseline_return", "promoted_return", "baseline_sharpe", "promoted_sharpe"}
    assert bvp["bars"] == 1440 and bvp["bars_from"] > "2026-01-08"  # after the lake's last bar (Jan 7)
    assert any("→ FULL" in line for line in lines) and any("baseline vs promoted" in line for line in lines)


def test_off_the_simulator_nothing_is_replayed_and_the_gate_failures_are_named(home: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_MARKET_SOURCE", "file")
    settings = load_settings()
    with ledger_of(settings).tx() as s:
        store.submit_in(s, default_param_set(), now=1.0, source="optimized_params[SIDEWAYS]",
                        gate={"passed": False, "failed_tests": ["dsr 0.12 < 0.95"]})
    out, lines = demo_section(settings)
    assert out["baseline_vs_promoted"] is None
    assert out["promotion"] == [{"candidate": 1, "stages": ["REJECTED"], "final_stage": "REJECTED",
                                 "failed_tests": ["dsr 0.12 < 0.95"]}]
    assert "dsr 0.12 < 0.95" in lines[0]
