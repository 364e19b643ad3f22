"""Market data assets: candles (with blocking quality checks), regimes, and a DuckDB summary."""


from collections.abc import Iterator

import dagster as dg
import polars as pl

from nettrace_dagster.charts import markdown_table, price_with_regimes
from nettrace_dagster.coordinator.api_budget import ApiBudgetExhausted
from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.market.quality import CHECK_DESCRIPTIONS, CHECK_NAMES, inspect_candles
from nettrace_dagster.market.schema import (
    CandleError,
    MarketDataError,
    infer_timeframe_seconds,
    timeframe_seconds,
)
from nettrace_dagster.market.sources import merge_candles
from nettrace_dagster.partitions import symbol_partitions
from nettrace_dagster.regimes import balanced_accuracy, label_regimes, regime_shares
from nettrace_dagster.resources import MarketDataResource, RegimeResource, WarehouseResource

CANDLE_CHECKS = [dg.AssetCheckSpec(name, asset="candles", blocking=True, description=CHECK_DESCRIPTIONS[name])
                 for name in CHECK_NAMES]


def candles_data_version(df: pl.DataFrame) -> dg.DataVersion:
    """Changes only when bars were added: the last bar's time and the bar count."""
    last = df["timestamp"].max().isoformat() if df.height else "none"
    return dg.DataVersion(f"{last}/{df.height}")


@dg.asset(partitions_def=symbol_partitions, check_specs=CANDLE_CHECKS, group_name="market",
          kinds={"polars", "parquet"}, output_required=False)
def candles(context: dg.AssetExecutionContext, market: MarketDataResource,
            execution: ExecutionResource) -> Iterator:
    """OHLCV bars per symbol from the configured source (sim, ccxt or file).

    Incremental: only bars newer than the last stored one are fetched and appended; a bar
    already stored is final, so re-materializing never duplicates a bar. A refresh that brings no
    new bar writes nothing and records no materialization; the data version (last bar time and
    bar count) changes only when bars were added, so downstream assets follow real change only. Blocking checks
    (sorted/unique, gaps, OHLC sanity, NaN) stop everything downstream when the data is bad;
    bad data is then not stored but quarantined (lake/_quarantine/), so the good history stays.
    """
    symbol = context.partition_key
    stored = market.lake.read_candles(symbol) if market.lake.exists("candles", symbol) else None
    since = stored["timestamp"].max() if stored is not None and stored.height else None
    # Exchange requests count against the one API budget every process shares (the coordinator).
    budget = (lambda exchange: execution.coordinator().api_call(exchange)) if market.source == "ccxt" else None
    try:
        new = market.client(progress=context.log.info, api_budget=budget).fetch(symbol, since)
    except (CandleError, MarketDataError, ApiBudgetExhausted) as exc:
        raise dg.Failure(description=f"{symbol}: {exc}") from None
    df = merge_candles(stored, new)
    timeframe_s = (infer_timeframe_seconds(df) or 60) if market.source == "file" else timeframe_seconds(market.timeframe)
    if stored is not None and stored.height and new.height == 0:
        # Nothing new: no write and no materialization, so the data version stays and nothing
        # downstream reruns. The checks (outputs Dagster requires) judge the stored bars again.
        context.log.info(f"{symbol}: no new bars after {since}; nothing written")
        yield from _check_results(symbol, inspect_candles(stored, timeframe_s, market.gap_tolerance))
        return
    shading = df["true_regime"] if df["true_regime"].null_count() < df.height else None
    metadata = {
        "summary": dg.MetadataValue.text(f"{symbol}: {df.height} bars ({new.height} new) from {market.source}"),
        "rows": df.height,
        "new_rows": new.height,
        "source": market.source,
        "first_timestamp": str(df["timestamp"].min()) if df.height else "",
        "last_timestamp": str(df["timestamp"].max()) if df.height else "",
        "last_close": float(df["close"][-1]) if df.height else 0.0,
    }
    if market.source == "ccxt" and df.height:
        # A live feed is as fresh as its newest bar, not as the run that fetched it: the freshness
        # check (assets/freshness.py) reads this key, so a feed that stops delivering bars goes red.
        newest_close = df["timestamp"].max().timestamp() + timeframe_s
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest_close)
    if df.height:
        title = f"{symbol} close" + (" (true regimes shaded)" if shading is not None else "")
        metadata["chart"] = price_with_regimes(df["timestamp"].to_list(), df["close"].to_numpy(),
                                               shading.to_list() if shading is not None else None, title)
    outcomes = inspect_candles(df, timeframe_s, market.gap_tolerance)
    if all(o.passed for o in outcomes):
        yield dg.Output(df, metadata=metadata, data_version=candles_data_version(df))
    else:
        kept = market.lake.quarantine("candles", symbol, new)
        context.log.error(f"{symbol}: {new.height} fetched bar(s) failed the checks; not stored, kept at {kept}")
    yield from _check_results(symbol, outcomes)


def _check_results(symbol: str, outcomes: list) -> Iterator[dg.AssetCheckResult]:
    """Each result names its symbol (text and metadata): the UI lists a partitioned asset's checks
    together, and a trader must see which symbol failed."""
    for outcome in outcomes:
        yield dg.AssetCheckResult(check_name=outcome.name, passed=outcome.passed,
                                  severity=dg.AssetCheckSeverity.ERROR, description=f"{symbol}: {outcome.description}",
                                  metadata={**outcome.metadata, "symbol": symbol})


@dg.asset(partitions_def=symbol_partitions, group_name="market", kinds={"polars", "parquet"},
          automation_condition=dg.AutomationCondition.eager())
def regimes(context: dg.AssetExecutionContext, candles: pl.DataFrame, regime: RegimeResource) -> dg.Output:
    """BULL / BEAR / SIDEWAYS per bar: the fitted return of a trailing window against the
    REGIME_BULL_THRESHOLD / REGIME_BEAR_THRESHOLD (causal; see `nettrace_dagster.regimes`).
    On simulated data, the balanced accuracy against the true regimes is recorded."""
    labels = label_regimes(candles, regime.config())
    accuracy = balanced_accuracy(candles["true_regime"], labels["regime"])
    current = labels["regime"][-1] if labels.height else "UNKNOWN"
    symbol = context.partition_key
    summary = f"{symbol}: now {current}" + (f", balanced accuracy {accuracy:.3f}" if accuracy is not None else "")
    metadata = {
        "summary": dg.MetadataValue.text(summary),
        "current_regime": current,
        "rows": labels.height,
        "shares": dg.MetadataValue.json(regime_shares(labels)),
    }
    if accuracy is not None:
        metadata["balanced_accuracy"] = round(accuracy, 4)
    if labels.height:
        metadata["chart"] = price_with_regimes(candles["timestamp"].to_list(), candles["close"].to_numpy(),
                                               labels["regime"].to_list(), f"{symbol} detected regimes")
    return dg.Output(labels, metadata=metadata)


SUMMARY_SQL = """
SELECT c.symbol, count(*) AS bars, min(c.timestamp) AS first_bar, max(c.timestamp) AS last_bar,
       arg_max(c.close, c.timestamp) AS last_close,
       arg_max(c.close, c.timestamp) / arg_min(c.close, c.timestamp) - 1 AS total_return,
       arg_max(r.regime, r.timestamp) AS current_regime,
       avg(CASE WHEN r.regime = 'BULL' THEN 1 ELSE 0 END) AS bull_share,
       avg(CASE WHEN r.regime = 'BEAR' THEN 1 ELSE 0 END) AS bear_share
FROM candles c JOIN regimes r ON r.symbol = c.symbol AND r.timestamp = c.timestamp
GROUP BY 1 ORDER BY 1
"""


@dg.asset(deps=[regimes], group_name="analytics", kinds={"duckdb", "parquet"},
          automation_condition=dg.AutomationCondition.eager())
def market_summary(warehouse: WarehouseResource) -> dg.Output:
    """One row per symbol, computed by DuckDB over the Parquet lake: bars, span, last close,
    return, current regime and regime shares."""
    df = warehouse.warehouse.query(SUMMARY_SQL)
    regimes_now = ", ".join(f"{s} {r}" for s, r in zip(df["symbol"], df["current_regime"], strict=True))
    return dg.Output(df, metadata={
        "summary": dg.MetadataValue.text(f"{df.height} symbol(s): {regimes_now}"),
        "rows": df.height,
        "table": markdown_table(df.to_dicts()),
    })
