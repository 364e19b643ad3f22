"""`nettrace demo`'s promotion section: the pipeline replayed in accelerated time.

The replay runs in a scratch ledger (`NETTRACE_HOME/demo/promotion/`, fresh each run) so the
user's own account and parameters in force are never touched by it. Its clock is the simulated
bar time: COLD backtests the candidate on the last `PARAM_OPT_COLD_LOOKBACK_DAYS` of the lake's
candles (the bars the search and the gate used); then the simulator's *next* bars (which no search
and no gate has seen: they lie after the newest bar in the lake) are traded, `STEP` bars per tick,
by the FULL set and by every candidate's sleeves beside it, and the promotion sensor's decision
runs after each tick, so WARM's 4 h and LIMITED's 24 h pass in seconds. Once a candidate is FULL,
`baseline_vs_promoted` trades the set it replaced and the promoted set side by side, from equal
fresh paper capital, on the following `HOLDOUT_BARS` (also unseen) and reports both.

The replay's account starts with $1,000 (not NETTRACE_INITIAL_CAPITAL_USD): its LIMITED sleeve
gets 10 % of it, and $10 (10 % of $100) is Rule 1's equity floor, where no sleeve can trade.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nettrace_dagster.coordinator.core import Coordinator
from nettrace_dagster.execution.costs import CostModel
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger, ledger_of
from nettrace_dagster.ledger.models import TraderCursor
from nettrace_dagster.market.sim import SIM_START, bars_between
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.paramsets.schema import default_param_set
from nettrace_dagster.promotion.cold import engine_backtest, last_days, make_cold_evaluator
from nettrace_dagster.promotion.config import PromotionConfig
from nettrace_dagster.promotion.pipeline import Pipeline
from nettrace_dagster.promotion.runtime import lake_candles
from nettrace_dagster.promotion.store import list_in
from nettrace_dagster.rules import load_rules
from nettrace_dagster.strategies.registry import STRATEGIES
from nettrace_dagster.trading.portfolio import market_equity_curve
from nettrace_dagster.trading.sleeves import Sleeve, tick_sleeves

CAPITAL = 1000.0
STEP = 120  # bars per replayed tick
WARMUP = 400  # bars of history each tick's signals are computed on (the slowest indicator needs 300)
HOLDOUT_BARS = 1440
FEE, SLIPPAGE_BPS = 0.001, 5.0


class SimClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def probe_sets(history: dict[str, pl.DataFrame], days: float, rules: Any, keep: int = 3,
               draws: int = 8, seed: int = 1, warm_bars: float = 240.0) -> list[dict[str, Any]]:
    """Candidates when the optimizer has published none (it is a separate part of the platform):
    each built-in strategy alone with its defaults and `draws` seeded random draws from its
    `param_space`, with and without a trailing stop, ranked by the COLD backtest on the lake's last
    `days`: the best of each strategy with a positive Sharpe that traded at least once per WARM
    window on average (a set that never trades in WARM has no evidence), the `keep` best of those.
    Not a search and with no gate evidence: they still have to beat their baseline twins on bars
    they were never chosen on."""
    recent = last_days(history, days)
    rng = random.Random(seed)
    neutral = default_param_set()["portfolio"]
    scored = []
    for name, cls in sorted(STRATEGIES.items()):
        draws_of = [dict(cls.default_params)]
        for _ in range(draws):
            draw = dict(cls.default_params)
            for key, (kind, low, high) in cls.param_space.items():
                draw[key] = rng.randint(int(low), int(high)) if kind == "int" else round(rng.uniform(low, high), 6)
            draws_of.append(draw)
        for params in draws_of:
            for portfolio in ({}, {"trailing_stop": 0.005}):
                ps = {"portfolio": {**neutral, **portfolio}, "strategies": {name: params}}
                try:
                    result = engine_backtest(recent, ps, {}, rules)  # counts every run's trades
                except Exception:  # noqa: BLE001 - an invalid draw (e.g. fast ≥ slow) is just not kept
                    continue
                if result["sharpe"] > 0 and result.get("trades", 0) >= result["bars"] / warm_bars:
                    scored.append((float(result["sharpe"]), name, ps))
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for sharpe, name, ps in scored:
        if name not in best or sharpe > best[name][0]:
            best[name] = (sharpe, ps)
    chosen = sorted(best.items(), key=lambda kv: -kv[1][0])[:keep]
    return [{"param_set": ps, "regime": "", "source": f"probe set ({name})",
             "gate": {"passed": True, "failed_tests": [], "note": "probe set: no optimizer, no gate evidence"},
             "kind": "params"} for name, (_, ps) in chosen]


def ledger_candidates(settings: Any) -> list[dict[str, Any]]:
    """The candidates the real pipeline took in (from `optimized_params` / `validated_strategies`)."""
    try:
        with ledger_of(settings).read() as s:
            views = list_in(s)
    except Exception:  # noqa: BLE001 - no ledger yet: nothing was submitted
        return []
    return [{"param_set": v.param_set, "regime": v.regime, "source": v.source, "kind": v.kind,
             "strategy": v.strategy, "gate": v.evidence.get("gate", {"passed": True, "failed_tests": []})}
            for v in views]


def _future(symbol: str, after_ms: int, bars: int, seed: int) -> pl.DataFrame:
    first = int((after_ms - SIM_START.timestamp() * 1000) // 60_000) + 1
    return bars_between(symbol, first, first + bars, seed)


def replay(settings: Any, submissions: list[dict[str, Any]], scratch: Path, max_bars: int | None = None,
           holdout_bars: int = HOLDOUT_BARS) -> dict[str, Any]:
    """Replay the pipeline on the simulator's bars after the lake's newest (see the module docstring)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    history = lake_candles(settings)
    if not history:
        history = {s: bars_between(s, 0, settings.nettrace_sim_bars, settings.nettrace_sim_seed) for s in settings.symbols}
    last_ms = min(int(df["timestamp"].max().timestamp() * 1000) for df in history.values())
    config = replace(PromotionConfig.from_settings(settings), sleeve_capital=CAPITAL, require_approval=False)
    horizon = max_bars or int((config.warm_window_s + config.limited_window_s) / 60) + holdout_bars + 2 * STEP
    future = {s: _future(s, last_ms, horizon, settings.nettrace_sim_seed) for s in history}
    frames = {s: pl.concat([history[s].filter(pl.col("timestamp") <= pl.from_epoch(pl.lit(last_ms), "ms")
                                              .dt.replace_time_zone("UTC")).select(future[s].columns),
                            future[s]]) for s in history}
    clock = SimClock(last_ms / 1000)
    ledger = Ledger(f"sqlite:///{scratch / 'ledger.db'}", "NORMAL")
    rules = load_rules(settings)
    costs = CostModel(FEE, SLIPPAGE_BPS)
    engine = ExecutionEngine(ledger, PaperBroker(ledger, costs), rules, costs, None, "main", CAPITAL, clock=clock)
    coord = Coordinator(ledger, None, "main", clock=clock)
    with ledger.tx() as s:  # the account trades the future only: its cursor starts at the lake's newest bar
        for symbol in frames:
            s.add(TraderCursor(account="main", symbol=symbol, last_bar_ms=last_ms))
    evaluator = make_cold_evaluator(lambda: history, config.cold_lookback_days, CAPITAL, rules)
    pipe = Pipeline(ledger, config, audit_dir=None, main_account="main", clock=clock, cold_evaluator=evaluator,
                    coordinator=coord)
    for sub in submissions:
        pipe.submit(sub["param_set"], regime=sub.get("regime", ""), source=sub.get("source", ""),
                    strategy=sub.get("strategy"), gate=sub.get("gate"), kind=sub.get("kind"))
    pipe.advance(by="demo")
    baseline_set = in_force.current(ledger)
    times = {s: df["timestamp"].dt.epoch("ms").to_numpy() for s, df in frames.items()}
    holdout: dict[str, Any] | None = None
    bars_done = 0
    while bars_done < horizon:
        bars_done += STEP
        end_ms = last_ms + bars_done * 60_000
        clock.t = end_ms / 1000
        window = {s: frames[s][max(0, int(np.searchsorted(times[s], end_ms, "right")) - WARMUP - STEP):
                               int(np.searchsorted(times[s], end_ms, "right"))] for s in frames}
        extra = []
        if holdout is not None:
            extra = holdout["sleeves"]
        tick_sleeves(engine, coord, window, pipe.sleeves() + extra, catch_up_bars=STEP)
        pipe.advance(by="demo")
        current = in_force.current(ledger)
        if holdout is None and current.id is not None and current.kind == "promote":
            holdout = {"start_ms": end_ms, "promoted": current, "sleeves": [
                Sleeve("holdout:baseline", "holdout_baseline", baseline_set.param_set, CAPITAL),
                Sleeve("holdout:promoted", "holdout_promoted", current.param_set, CAPITAL,
                       strategy_files=current.strategy_files)]}
        if holdout is not None and end_ms >= holdout["start_ms"] + holdout_bars * 60_000:
            break
        if holdout is None and not pipe.candidates(("COLD", "WARM", "LIMITED")):
            break
    views = pipe.candidates()
    out: dict[str, Any] = {"promotion": [{"candidate": v.id, "source": v.source, "regime": v.regime,
                                          "param_set_id": v.param_set_id, "stages": v.stages,
                                          "final_stage": v.stage, "failed_tests": v.failed_tests(),
                                          "reason": v.history[-1]["reason"] if v.history else ""} for v in views],
                           "replayed_bars": bars_done}
    if holdout is not None:
        window = {s: frames[s].filter(pl.col("timestamp").dt.epoch("ms") <= clock.t * 1000) for s in frames}
        b = _curve_stats(ledger, "holdout:baseline", window, holdout["start_ms"])
        p = _curve_stats(ledger, "holdout:promoted", window, holdout["start_ms"])
        out["baseline_vs_promoted"] = {"bars": b["bars"], "baseline_return": b["return"],
                                       "promoted_return": p["return"], "baseline_sharpe": b["sharpe"],
                                       "promoted_sharpe": p["sharpe"], "promoted_candidate":
                                       holdout["promoted"].candidate_id,
                                       "bars_from": _iso(holdout["start_ms"]), "bars_to": _iso(clock.t * 1000)}
    ledger.dispose()
    return out


def _iso(ms: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="minutes")


def _curve_stats(ledger: Ledger, account: str, candles: dict[str, pl.DataFrame], start_ms: int) -> dict[str, Any]:
    """Return and annualised Sharpe of the account's per-bar equity from `start_ms` on (flat at
    its capital where it held nothing)."""
    curve = market_equity_curve(ledger, account, candles).curve
    grid = next(iter(candles.values())).filter(pl.col("timestamp").dt.epoch("ms") > start_ms)["timestamp"]
    n = grid.len()
    if curve.height == 0:
        return {"bars": n, "return": 0.0, "sharpe": 0.0}
    eq = pl.DataFrame({"timestamp": grid}).join_asof(curve.select("timestamp", "equity").sort("timestamp"),
                                                     on="timestamp").with_columns(
        pl.col("equity").fill_null(CAPITAL))["equity"].to_numpy()
    r = np.diff(np.concatenate([[CAPITAL], eq])) / np.concatenate([[CAPITAL], eq[:-1]])
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    sharpe = float(r.mean() / sd * math.sqrt(365 * 1440)) if sd > 0 else 0.0
    return {"bars": n, "return": float(eq[-1] / CAPITAL - 1.0) if n else 0.0, "sharpe": sharpe}


def demo_section(settings: Any, instance: Any = None) -> tuple[dict[str, Any], list[str]]:
    """`{"promotion": [...], "baseline_vs_promoted": {...}}` and the lines for the human summary."""
    submissions = ledger_candidates(settings)
    used_probes = not submissions
    if used_probes:
        history = lake_candles(settings) or {s: bars_between(s, 0, settings.nettrace_sim_bars, settings.nettrace_sim_seed)
                                             for s in settings.symbols}
        submissions = probe_sets(history, float(settings.param_opt_cold_lookback_days), load_rules(settings),
                                 warm_bars=float(settings.param_opt_warm_hours) * 60)
    if settings.market_source != "sim":
        rejected = [{"candidate": i + 1, "stages": ["REJECTED"] if not s["gate"].get("passed") else [],
                     "final_stage": "REJECTED" if not s["gate"].get("passed") else "NOT_REPLAYED",
                     "failed_tests": s["gate"].get("failed_tests", [])} for i, s in enumerate(submissions)]
        lines = ["  promotion: no replay (future bars exist only for the simulator); "
                 + (", ".join(f"candidate {r['candidate']} stopped by {'; '.join(r['failed_tests'])}"
                              for r in rejected if r["failed_tests"]) or "nothing to promote")]
        return {"promotion": rejected, "baseline_vs_promoted": None}, lines
    out = replay(settings, submissions, settings.home / "demo" / "promotion")
    lines = [f"  promotion: {len(out['promotion'])} candidate(s) replayed over {out['replayed_bars']} unseen "
             f"bars in accelerated time" + (" (probe sets: the optimizer published no candidate)" if used_probes else "")]
    for c in out["promotion"]:
        why = "; ".join(c["failed_tests"]) or c["reason"]
        lines.append(f"    candidate {c['candidate']} ({c['source']}): {' → '.join(c['stages'])}"
                     + ("" if c["final_stage"] == "FULL" else f" — {why}"))
    bvp = out.get("baseline_vs_promoted")
    if bvp:
        lines.append(f"  baseline vs promoted on {bvp['bars']} unseen bars ({bvp['bars_from']} → {bvp['bars_to']}): "
                     f"return {bvp['baseline_return']:+.2%} → {bvp['promoted_return']:+.2%}, "
                     f"Sharpe {bvp['baseline_sharpe']:.2f} → {bvp['promoted_sharpe']:.2f}")
    else:
        lines.append("  baseline vs promoted: nothing was promoted")
    return {"promotion": out["promotion"], "baseline_vs_promoted": bvp}, lines
