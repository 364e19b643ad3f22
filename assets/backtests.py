"""Backtests of the production parameters per symbol, strategy and regime."""

import dagster as dg
import polars as pl

from assets.inputs import SymbolFrames, by_symbol, every_symbol
from assets.market import candles as candles_asset
from assets.market import regimes as regimes_asset
from nettrace_dagster.backtest.by_regime import ALL, backtest_symbols
from nettrace_dagster.charts import equity_panels, markdown_table
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion.cold import engine_params
from nettrace_dagster.rules import load_rules
from nettrace_dagster.settings import load_settings


@dg.asset(ins={"candles": every_symbol(candles_asset), "regimes": every_symbol(regimes_asset)},
          group_name="backtest", kinds={"polars", "numba"},
          automation_condition=dg.AutomationCondition.eager())
def backtests(context: dg.AssetExecutionContext, candles: SymbolFrames,
              regimes: SymbolFrames) -> dg.Output[pl.DataFrame]:
    """Every strategy with the parameters in force (the ledger's FULL set; the defaults until one is promoted)
    backtested on every symbol, one run each; returns, Sharpe, drawdown, win rate and exposure
    reported for all bars and per regime (BULL / BEAR / SIDEWAYS) from the bars' regime labels.
    Entries pass Rule 2 with the execution layer's own rules, tightening settings included."""
    candles, regimes = by_symbol(context, "candles", candles), by_symbol(context, "regimes", regimes)
    settings = load_settings()
    rules = load_rules(settings)  # the same Rules object trading uses: backtest and live agree
    current = in_force.current(ledger_of(settings))  # the set the trader trades (the ledger's FULL set)
    report, results = backtest_symbols(candles, regimes, strategies=current.strategies,
                                       engine=engine_params(current.portfolio), rules=rules)
    overall = report.filter(pl.col("regime") == ALL)
    metadata: dict[str, object] = {"rows": report.height, "table": markdown_table(report.drop("params").to_dicts()),
                                   "rule2_min_confidence": rules.min_confidence,
                                   "rule2_min_confirmations": rules.min_confirmations,
                                   "param_set_id": current.param_set_id, "in_force_id": current.id or 0}
    if overall.height:
        best = overall.sort("sharpe", descending=True).row(0, named=True)
        metadata["summary"] = dg.MetadataValue.text(
            f"{overall.height} backtests on {overall['symbol'].n_unique()} symbol(s); best {best['strategy']} on "
            f"{best['symbol']}: return {best['total_return']:+.2%}, Sharpe {best['sharpe']:.2f}, "
            f"max drawdown {best['max_drawdown']:.1%}, {best['trades']} trades")
        metadata["equity_curves"] = equity_panels(
            {symbol: (candles[symbol]["timestamp"].to_list(),
                      {name: r.equity / r.params.initial_equity for (s, name), r in sorted(results.items()) if s == symbol})
             for symbol in sorted({s for s, _ in results})}, "equity / initial", "backtest equity curves",
            buy_and_hold={symbol: candles[symbol]["close"].to_numpy() for symbol in candles})
    else:
        metadata["summary"] = dg.MetadataValue.text("no candles to backtest")
    context.log.info(str(metadata["summary"].value))
    return dg.Output(report, metadata=metadata)
