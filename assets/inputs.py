"""Inputs that read every symbol partition of an upstream asset as one value per symbol."""

import dagster as dg
import polars as pl

# What the IO manager hands over for an all-partitions input: a dict per symbol, or the bare
# frame when there is exactly one partition (NETTRACE_SYMBOLS with one symbol).
SymbolFrames = pl.DataFrame | dict[str, pl.DataFrame]


def every_symbol(asset: dg.AssetsDefinition) -> dg.AssetIn:
    """All partitions of `asset` as one input, to be read through `by_symbol`. Typed Any: a
    `dict[...]` annotation makes Dagster's type check fail the step on the one-symbol frame."""
    return dg.AssetIn(key=asset.key, partition_mapping=dg.AllPartitionMapping(), dagster_type=dg.Any)


def by_symbol(context: dg.AssetExecutionContext, name: str, value: SymbolFrames | None) -> dict[str, pl.DataFrame]:
    """The input `name` as {symbol: frame}, whether one symbol or many were loaded."""
    if value is None:  # no upstream partition exists yet
        return {}
    if isinstance(value, dict):
        return value
    keys = context.asset_partition_keys_for_input(name)
    if len(keys) != 1:
        raise dg.Failure(description=f"input {name!r}: one frame for {len(keys)} partitions")
    return {keys[0]: value}
