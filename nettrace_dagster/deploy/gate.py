"""The pre-deploy gate: before any node sees a release, its strategies pass validation again (a
file strategy through the six validation layers and its code hash; a built-in's code hash must
match the code this machine runs) and a smoke backtest on recent candles (every strategy with its
released parameters, on each symbol: it must run and give finite numbers). A failing release never
reaches a node."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from nettrace_dagster.deploy.release import ReleaseInfo, builtin_code_hash, file_code_hash
from nettrace_dagster.settings import Settings

SMOKE_BARS = 1000


@dataclass
class GateReport:
    passed: bool
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "problems": self.problems, "checked": self.checked}


def lake_candles(settings: Settings, symbol: str) -> pl.DataFrame | None:
    """A symbol's candles as the pipeline stored them (the lake's file, read directly: the lake
    module's Dagster IO manager is not needed — nor its import time — on a node)."""
    path = settings.lake_dir / "candles" / f"{symbol}.parquet"
    return pl.read_parquet(path) if path.is_file() else None


def recent_candles(settings: Settings, bars: int = SMOKE_BARS) -> dict[str, pl.DataFrame]:
    """The lake's latest bars per symbol; the simulator's when the lake has none (local profile)."""
    out = {}
    for symbol in settings.symbols:
        stored = lake_candles(settings, symbol)
        if stored is not None:
            out[symbol] = stored.tail(bars)
        elif settings.market_source == "sim":
            from nettrace_dagster.market.sources import make_source

            src = make_source("sim", timeframe=settings.nettrace_timeframe, sim_seed=settings.nettrace_sim_seed,
                              sim_bars=bars, sim_speed=settings.nettrace_sim_speed)
            out[symbol] = src.fetch(symbol, None)
    return out


def validate_strategy_file(path: str) -> list[str]:
    """The validation layers' verdict on one file (problems; empty when it passes)."""
    from nettrace_dagster.validation import validate_file  # the validation package (lazy: it is heavy)

    report = validate_file(path)
    if report.passed:
        return []
    failed = [layer for layer in report.layers if not _get(layer, "passed")]
    return [f"{path}: validation layer {_get(layer, 'name')} failed: "
            f"{'; '.join(map(str, _get(layer, 'errors') or []))[:200]}" for layer in failed] or [f"{path}: validation failed"]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def predeploy_gate(release: ReleaseInfo, settings: Settings, candles: dict[str, pl.DataFrame] | None = None) -> GateReport:
    from nettrace_dagster.backtest.engine import run_backtest
    from nettrace_dagster.strategies.registry import STRATEGIES, load_strategy_file

    report = GateReport(True)
    loaded: dict[str, Any] = {}
    for name, spec in sorted(release.strategies.items()):
        try:
            if spec["kind"] == "builtin":
                if name not in STRATEGIES or builtin_code_hash(name) != spec["code_sha256"]:
                    report.problems.append(f"{name}: built-in code differs from the release's code hash")
                    continue
                loaded[name] = STRATEGIES[name]()
            else:
                path = spec["path"]
                if file_code_hash(path) != spec["code_sha256"]:
                    report.problems.append(f"{name}: {path} changed since the release was made")
                    continue
                problems = validate_strategy_file(path)
                if problems:
                    report.problems.extend(problems)
                    continue
                loaded[name] = load_strategy_file(path)
            report.checked.append(f"{name}: code hash")
        except Exception as exc:  # noqa: BLE001 - any failure here is the release's, reported
            report.problems.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    frames = candles if candles is not None else recent_candles(settings)
    if not frames:
        report.problems.append("smoke backtest: no recent candles (materialize candles first)")
    for name, strategy in loaded.items():
        params = release.params["strategies"].get(name, {})
        for symbol, df in sorted(frames.items()):
            try:
                m = run_backtest(df, strategy, params, record=False).summary()
                bad = [k for k in ("final_equity", "total_return", "max_drawdown")
                       if not math.isfinite(float(m[k]))]
                if bad:
                    report.problems.append(f"{name} on {symbol}: smoke backtest gave non-finite {', '.join(bad)}")
                else:
                    report.checked.append(f"{name} on {symbol}: smoke backtest {m['trades']} trade(s)")
            except Exception as exc:  # noqa: BLE001
                report.problems.append(f"{name} on {symbol}: smoke backtest failed: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}")
    report.passed = not report.problems
    return report
