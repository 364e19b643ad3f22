"""The paper/live portfolio: materializing it runs one trading tick and records the account."""

import dagster as dg
import polars as pl

from assets.inputs import SymbolFrames, by_symbol, every_symbol
from assets.market import candles as candles_asset
from nettrace_dagster.charts import line_chart, markdown_table
from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.trading.portfolio import equity_curve, summary_line
from nettrace_dagster.trading.trader import Trader


@dg.asset(ins={"candles": every_symbol(candles_asset)},
          group_name="trading", kinds={"polars", "parquet"})
def portfolio(context: dg.AssetExecutionContext, execution: ExecutionResource,
              candles: SymbolFrames) -> dg.Output[pl.DataFrame]:
    """One trading tick — reconcile open orders, the active strategies' signals on the latest
    candles → intents → the execution layer (rules, ledger, broker) → fills — then the account:
    equity curve, positions, daily P&L and where it stands against the capital rules."""
    candles = by_symbol(context, "candles", candles)
    engine = execution.engine()
    report = Trader(engine, execution.coordinator(), catch_up_bars=execution.catch_up_bars).tick(candles)
    if not report.ran:
        context.log.warning("trading tick skipped: " + "; ".join(report.reasons))
    status = engine.status()
    curve = equity_curve(engine.ledger, engine.account)
    counts = report.counts()
    metadata: dict[str, object] = {
        "summary": dg.MetadataValue.text(summary_line(status, counts, report.bars)),
        "equity": status["equity"],
        "daily_pnl": status["rules"]["daily_pnl"],
        "hardstop": status["hardstop"]["on"],
        "entries_allowed": status["rules"]["entries_allowed"],
        "rule_status": dg.MetadataValue.json(status["rules"]),
        "tick": dg.MetadataValue.json({"bars": report.bars, "orders": counts, "reconcile": report.reconcile}),
        "positions": markdown_table(status["positions"]),
        "strategies": markdown_table(status["strategies"]),
    }
    if curve.height:
        metadata["equity_curve"] = line_chart(curve["timestamp"].to_list(), {"equity": curve["equity"].to_numpy()},
                                              f"{status['mode']} equity (USD)")
    return dg.Output(curve, metadata=metadata)
