"""`nettrace backtest --data FILE|SYMBOL --strategy NAME|FILE.py --params JSON [--json]`: one backtest.

A strategy .py file runs only after it passed the six validation layers (`nettrace validate`),
and then only inside the sandbox: its signals are computed there from the candles, the engine
runs here on the signals that come back. A rejected file exits 1 with the failing layer on one
line.

Prints total return, Sharpe, drawdown, win rate … as fractions (0.05 = 5 %). Bad data, bad
parameters or a broken strategy file exit 2 with one line naming the problem; time gaps are only a
warning on stderr (markets that close have them). Entries pass Rule 2 with the execution layer's
own rules (`NETTRACE_RULE_*` tightening included), so the backtest trades what paper and live would.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import polars as pl

from nettrace_dagster.cli import UsageError, emit
from nettrace_dagster.market.schema import CandleError, gap_report, infer_timeframe_seconds
from nettrace_dagster.market.schema import seconds_to_timeframe as tf_name

if TYPE_CHECKING:
    from nettrace_dagster.strategies import Strategy

FILE_SUFFIXES = (".csv", ".parquet", ".txt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backtest", help="backtest a strategy on a candle file or a symbol in the lake")
    p.add_argument("--data", required=True,
                   help="a .csv/.parquet candle file (timestamp,open,high,low,close,volume) or a symbol in the lake")
    p.add_argument("--strategy", required=True, help="built-in strategy name, or a strategy .py file")
    p.add_argument("--params", default="{}",
                   help='JSON object: strategy parameters and engine keys, e.g. \'{"fast": 10, "slow": 30, '
                        '"stop_loss": 0.02}\'')
    p.add_argument("--fee", type=float, default=None, help="fee per side as a fraction of notional (default 0.001)")
    p.add_argument("--slippage-bps", type=float, default=None, help="slippage in basis points (default 0)")
    p.add_argument("--equity", type=float, default=None, help="initial equity (default 10000)")
    p.add_argument("--trades", action="store_true", help="include the list of trades in the output")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=handle)


def load_candles(data: str) -> tuple[pl.DataFrame, str]:
    """Candles from a file, or from the lake when `data` names a symbol."""
    from nettrace_dagster.market.importer import load_candles_arg
    from nettrace_dagster.market.lake import Lake
    from nettrace_dagster.settings import load_settings

    return load_candles_arg(data, Lake(load_settings().lake_dir))


def _no_constant(name: str) -> Any:
    # json.loads accepts Infinity, -Infinity and NaN, which are not JSON numbers and no parameter's value
    raise UsageError(f"--params: {name} is not a number a parameter can take (finite numbers only)")


def parse_params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--params is not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise UsageError("--params is nested too deeply") from None
    if not isinstance(params, dict):
        raise UsageError("--params must be a JSON object such as '{\"fast\": 10, \"slow\": 30}'")
    return params


def load_strategy(spec: str) -> Strategy:
    """A built-in strategy by name, or a .py file's strategy after it passed the six validation
    layers — its code then runs only in the sandbox. StrategyRejected when a layer rejects the
    file; UsageError for an unknown name or a path that is not a strategy file."""
    from nettrace_dagster.strategies import get_strategy

    if spec.endswith(".py"):
        from nettrace_dagster.validation.report import UnusableInput
        from nettrace_dagster.validation.sandboxed import load_validated

        try:
            strategy, report = load_validated(spec)
        except UnusableInput as exc:
            raise UsageError(str(exc)) from None
        for warning in report.warnings:
            print(f"nettrace backtest: warning: {spec}: {warning}", file=sys.stderr)
        return strategy
    try:
        return get_strategy(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def handle(args: argparse.Namespace) -> int:
    from nettrace_dagster.backtest import EngineParams, run_backtest, split_params
    from nettrace_dagster.backtest.engine import current_rules, gate_thresholds
    from nettrace_dagster.validation.sandboxed import StrategyRejected

    params = parse_params(args.params)
    try:
        strategy = load_strategy(args.strategy)
    except StrategyRejected as exc:  # exit 1: the file was checked and failed (one line names the layer)
        print(f"nettrace backtest: {exc}", file=sys.stderr)
        return 1
    cli_engine = {k: v for k, v in (("fee", args.fee), ("slippage_bps", args.slippage_bps),
                                    ("initial_equity", args.equity)) if v is not None}
    strat_params, engine_keys = split_params(params)
    try:  # every parameter is checked before any data is read
        strategy.resolve_params(strat_params)
        engine = EngineParams.from_dict(cli_engine)
        EngineParams.from_dict(engine_keys, base=engine)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    rules = current_rules()  # the execution layer's Rule 2; a loosening setting exits 2 here
    candles, source = load_candles(args.data)
    if candles.height == 0:
        raise CandleError(f"{source}: no rows")
    timeframe_s = infer_timeframe_seconds(candles)
    if timeframe_s:
        missing, share = gap_report(candles, timeframe_s)
        if missing:
            print(f"nettrace backtest: warning: {missing} missing bar(s) ({share:.2%} of the span) in {source}; "
                  "backtesting the bars that are there", file=sys.stderr)
    try:
        result = run_backtest(candles, strategy, params, engine, rules=rules)
    except ValueError as exc:  # StrategyError included: the strategy's code failed or broke the protocol
        raise UsageError(str(exc).splitlines()[0]) from None
    m = result.metrics
    min_confidence, min_confirmations = gate_thresholds(result.params, rules)
    payload: dict[str, Any] = {
        "strategy": strategy.name,
        "data": source,
        "bars": m.bars,
        "first_timestamp": str(candles["timestamp"][0]),
        "last_timestamp": str(candles["timestamp"][-1]),
        "timeframe": tf_name(timeframe_s) if timeframe_s else None,
        **m.to_dict(),
        "params": strategy.resolve_params(strat_params),
        "engine": result.params.to_dict(),
        "rule2": {"min_confidence": min_confidence, "min_confirmations": min_confirmations,
                  "entry_signals": result.entry_signals, "passed": result.gated_entries},
    }
    if args.trades:
        payload["trade_list"] = result.trades.to_dicts()
    pf = payload["profit_factor"]
    rows = [
        ("bars", f"{m.bars}  {payload['first_timestamp']} … {payload['last_timestamp']}"),
        ("entry signals", f"{result.entry_signals}, {result.gated_entries} passed Rule 2 (confidence ≥ "
                          f"{min_confidence:g}, ≥ {min_confirmations} confirmations)"),
        ("trades", f"{m.trades} (closed {m.closed_trades})  win rate {m.win_rate:.1%}  exposure {m.exposure:.1%}"),
        ("equity", f"{m.initial_equity:,.2f} → {m.final_equity:,.2f} ({m.total_return:+.2%})  fees {m.fees_paid:,.2f}"),
        ("risk", f"Sharpe {m.sharpe:.2f}  Sortino {m.sortino:.2f}  max drawdown {m.max_drawdown:.2%}  "
                 f"profit factor {f'{pf:.2f}' if pf is not None else 'n/a'}"),
    ]
    width = max(len(label) for label, _ in rows)
    human = "\n".join([f"{strategy.name} on {source}", *(f"  {label:<{width}}  {value}" for label, value in rows)])
    emit(payload, args.json, human)
    return 0
