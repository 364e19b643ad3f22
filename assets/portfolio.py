"""The paper/live portfolio: materializing it runs one trading tick and records the account."""

import dagster as dg
import polars as pl

from assets.inputs import SymbolFrames, by_symbol, every_symbol
from assets.market import candles as candles_asset
from nettrace_dagster.charts import equity_story, markdown_table
from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.paramsets import in_force
from nettrace_dagster.promotion.runtime import pipeline_from_settings
from nettrace_dagster.trading.portfolio import market_equity_curve, summary_line
from nettrace_dagster.trading.sleeves import sleeve_rows, tick_sleeves
from nettrace_dagster.trading.trader import Trader


@dg.asset(ins={"candles": every_symbol(candles_asset)},
          group_name="trading", kinds={"polars", "parquet"})
def portfolio(context: dg.AssetExecutionContext, execution: ExecutionResource,
              candles: SymbolFrames) -> dg.Output[pl.DataFrame]:
    """One trading tick of the parameter set in force (and of each promotion candidate's sleeve
    beside it) — reconcile open orders, the active strategies' signals on the latest
    candles → intents → the execution layer (rules, ledger, broker) → fills — then the account:
    the equity curve in market time (the bars traded, from the starting capital, entries, exits and
    HARDSTOP marked), positions, daily P&L and where it stands against the capital rules."""
    candles = by_symbol(context, "candles", candles)
    engine = execution.engine()
    # The FULL set trades the account; WARM / LIMITED candidates trade their sleeves beside it.
    sleeves = pipeline_from_settings(execution.settings).sleeves()
    reports = tick_sleeves(engine, execution.coordinator(), candles, sleeves, catch_up_bars=execution.catch_up_bars,
                           main_trader=Trader(engine, execution.coordinator(), catch_up_bars=execution.catch_up_bars))
    report = reports[engine.account]
    if not report.ran:
        context.log.warning("trading tick skipped: " + "; ".join(report.reasons))
    status = engine.status()
    story = market_equity_curve(engine.ledger, engine.account, candles)
    curve = story.curve
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
        "params_in_force": dg.MetadataValue.json(in_force.current(engine.ledger).to_dict()),
    }
    if sleeves:
        metadata["sleeves"] = markdown_table(sleeve_rows(engine, sleeves, reports))
    if story.unplaced:
        metadata["fills_without_bar_time"] = story.unplaced  # orders booked before bar times were recorded
    if curve.height:
        trades = story.trades
        entries, exits = trades.filter(pl.col("kind") == "entry"), trades.filter(pl.col("kind") == "exit")
        first, last = curve["timestamp"][0], curve["timestamp"][-1]
        metadata["equity_curve"] = equity_story(
            curve["timestamp"].to_list(), curve["equity"].to_numpy(), story.principal,
            f"{status['mode']} equity in market time, {first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} UTC: "
            f"${story.principal:,.2f} → ${curve['equity'][-1]:,.2f}",
            entries=(entries["timestamp"].to_list(), entries["equity"].to_list()),
            exits=(exits["timestamp"].to_list(), exits["equity"].to_list()),
            hardstop=story.hardstop, hardstop_label=f"HARDSTOP {story.hardstop_reason}".strip()[:60])
    return dg.Output(curve, metadata=metadata)
