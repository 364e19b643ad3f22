"""The Parquet lake: where every asset's data lives on disk, and how it is written safely.

Layout (the same one `dagster_polars.PolarsParquetIOManager` uses, so Dagster and plain Python
read the same files): `<lake>/<asset>/<partition>.parquet`, or `<lake>/<asset>.parquet`.
Writes go to a temporary file that is renamed over the old one, so a crash mid-write never
leaves a torn file behind: the previous version stays readable.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from dagster import InputContext, OutputContext
from dagster_polars import PolarsParquetIOManager
from upath import UPath


def write_parquet_atomic(df: pl.DataFrame, path: Path, **kwargs: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.write_parquet(tmp, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Lake:
    """Read access to the lake by asset name and partition."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, asset: str, partition: str | None = None) -> Path:
        return self.root / asset / f"{partition}.parquet" if partition else self.root / f"{asset}.parquet"

    def exists(self, asset: str, partition: str | None = None) -> bool:
        return self.path(asset, partition).exists()

    def read(self, asset: str, partition: str | None = None) -> pl.DataFrame:
        path = self.path(asset, partition)
        if not path.exists():
            what = f"{asset}[{partition}]" if partition else asset
            raise FileNotFoundError(f"{what} is not in the lake at {path}; materialize it first")
        return pl.read_parquet(path)

    def read_candles(self, symbol: str) -> pl.DataFrame:
        return self.read("candles", symbol)

    def quarantine(self, asset: str, partition: str, df: pl.DataFrame) -> Path:
        """Keep rejected data for inspection, out of the lake's views (folders starting with _)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.root / "_quarantine" / asset / f"{partition}-{stamp}.parquet"
        write_parquet_atomic(df, path)
        return path

    def partitions(self, asset: str) -> list[str]:
        folder = self.root / asset
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


class AtomicParquetIOManager(PolarsParquetIOManager):
    """`PolarsParquetIOManager` whose local writes are atomic (temp file + rename).

    Local reads use `pl.scan_parquet` directly: dagster-polars 0.27 still passes `rechunk=`,
    which polars 2 removed.
    """

    def scan_df_from_path(self, path: UPath, context: InputContext,
                          partition_key: str | None = None) -> pl.LazyFrame:
        if getattr(path, "protocol", "") not in ("", "file", "local"):
            return super().scan_df_from_path(path, context, partition_key)
        return pl.scan_parquet(str(path))

    def write_df_to_path(self, context: OutputContext, df: pl.DataFrame, path: UPath) -> None:
        if getattr(path, "protocol", "") not in ("", "file", "local"):
            return super().write_df_to_path(context, df, path)
        write_parquet_atomic(df, Path(str(path)), compression="zstd")
